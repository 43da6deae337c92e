"""Periodic jobs: schedules declared in config, their ticks, and the scheduler loop."""
