"""ApexVerify: self-hostable batch verification of email addresses and phone numbers."""

__version__ = "0.1.0"
