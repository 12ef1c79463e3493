"""Self-contained demonstrations behind ``tomodiff demo*`` commands."""
