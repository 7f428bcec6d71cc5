"""`from trainboard.tensorboard import SummaryWriter`: see trainboard.tracking.tensorboard."""

from trainboard.tracking.tensorboard import SummaryWriter, metric_key

__all__ = ["SummaryWriter", "metric_key"]
