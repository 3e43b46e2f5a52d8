"""Running Bastion: checks of the environment and configuration."""
