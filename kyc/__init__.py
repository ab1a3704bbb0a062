"""kyc domain package."""
