"""AgilePlus: a farm of workers that implements software features with AI coding agents."""
