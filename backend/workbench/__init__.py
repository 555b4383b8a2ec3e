"""The bureau workbench: server-rendered pages for staff on the same domain services the API uses."""
