"""What follows each event of a work package: see ``agileplus.workflow.services``."""
