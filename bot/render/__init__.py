"""What every renderer shares: fitting a reply into a platform's limits."""
