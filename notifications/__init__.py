"""Notifications: channels (FCM push, in-app inbox), message templates zh-CN/en, delivery policy."""
