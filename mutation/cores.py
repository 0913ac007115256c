"""The cores a mutation campaign mutates, and the composition each mutant is judged in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Core:
    name: str
    path: str
    """The file mutmut mutates, relative to the repository root."""
    module: str
    """The module that file is imported as."""
    judge: str
    """The function of ``compose.py`` that runs the kit against a subject built on it."""
    cases: str
    """What judges it, for the report."""

    @property
    def file(self) -> Path:
        return ROOT / self.path


CORES = {
    core.name: core
    for core in (
        Core(
            "atmosphere-server",
            "sansio/atmosphere/_server.py",
            "trackwire.atmosphere._server",
            "judge_atmosphere_server",
            "Atmosphere server cases against the iTrack reference server and an echo application "
            "on the core's defaults",
        ),
        Core(
            "itrack-server",
            "sansio/itrack/_server.py",
            "trackwire.itrack._server",
            "judge_itrack_server",
            "iTrack server cases (two tenants, operator hook) against the reference server",
        ),
        Core(
            "fleetfreedom-server",
            "sansio/fleetfreedom/_server.py",
            "trackwire.fleetfreedom._server",
            "judge_fleetfreedom_server",
            "FleetFreedom server cases (two tenants, operator hook) against the reference server",
        ),
        Core(
            "atmosphere-client",
            "sansio/atmosphere/_client.py",
            "trackwire.atmosphere._client",
            "judge_atmosphere_client",
            "Atmosphere client cases against AtmosphereClient over the trio driver, with and "
            "without TrackMessageSize, with a 2.5 s inactivity timeout",
        ),
        Core(
            "itrack-client",
            "sansio/itrack/_client.py",
            "trackwire.itrack._client",
            "judge_itrack_client",
            "iTrack client cases against ITrackClient over the trio driver, with credentials",
        ),
        Core(
            "fleetfreedom-client",
            "sansio/fleetfreedom/_client.py",
            "trackwire.fleetfreedom._client",
            "judge_fleetfreedom_client",
            "FleetFreedom client cases against FleetFreedomClient over the trio driver, with a "
            "1 s keep-alive",
        ),
    )
}
