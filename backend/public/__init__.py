"""Public disclosure (Art. 19): the QR landing page, the public operator query and their shared labels."""
