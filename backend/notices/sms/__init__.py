"""SMS for the notices the law requires (Alibaba Cloud Dysmsapi): templates, contacts, fallback, sending, reach."""
