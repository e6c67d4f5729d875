"""What is trained: a task turns a batch into a loss and a split's outputs into metrics."""

from videomamba.tasks.base import StepOutput, Task
from videomamba.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask", "StepOutput", "Task", "build_task"]


def build_task(name: str, **kwargs) -> Task:
    """The task called ``name`` (``classification``); later issues add the others."""
    from videomamba.errors import ConfigError

    if name == "classification":
        return ClassificationTask(**kwargs)
    if name == "retrieval":
        from videomamba.tasks.retrieval import RetrievalTask

        return RetrievalTask(**kwargs)
    raise ConfigError(f"task: unknown task {name!r}; available: classification, retrieval")
