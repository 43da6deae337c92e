"""The worker pool: threads in one process, async handlers on one loop, processes under a
supervisor, and the limits that stop or recycle what runs too long or grows too big."""
