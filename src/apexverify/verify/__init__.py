"""Verification engines behind one :class:`~apexverify.verify.base.Verifier` interface."""
