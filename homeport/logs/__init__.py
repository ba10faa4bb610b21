"""Log streams of jobs and endpoints, kept as files in the data dir."""
