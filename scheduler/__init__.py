"""The periodic jobs, registered in one list (``scheduler.cron``) for ``rq cron``."""
