"""Starting workers with a cluster's scheduler: `trainboard launch slurm`."""
