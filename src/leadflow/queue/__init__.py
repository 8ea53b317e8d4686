"""A rep's work queue: the next best task (queue mode) and today's tasks (list mode)."""
