"""The simulation's error, importable without Django."""


class SimulationError(RuntimeError):
    """The worker pages answered something a worker could not go on from."""
