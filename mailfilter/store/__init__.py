"""The quarantine and its release."""
