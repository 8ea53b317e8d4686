"""Email, SMS and WeChat: the message outbox, providers, tracking and unsubscribe."""
