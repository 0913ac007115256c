"""msgspec Structs of every field of the two benchmark payloads (the typed-decode floor)."""

from __future__ import annotations

from typing import Any

import msgspec


class Location(msgspec.Struct):
    lat: float
    lng: float


class Gps(msgspec.Struct):
    updated: str
    signal_level: int
    location: Location
    heading: int
    speed: int
    alt: int


class Gsm(msgspec.Struct):
    updated: str
    level: int


class State(msgspec.Struct):
    source_id: int
    gps: Gps
    connection_status: str
    movement_status: str
    last_update: str
    gsm: Gsm


class StateMessage(msgspec.Struct):
    type: str
    event: str
    data: State


class Position(msgspec.Struct):
    lat: float
    lng: float
    accuracy: int
    altitude: int
    bearing: int
    speed: float
    speedLimit: int
    dts: str
    origin: int


class Attribute(msgspec.Struct):
    name: str
    simple: str
    raw: str


class AssetAdvanced(msgspec.Struct):
    id: int
    company: int
    position: Position
    odometer: float
    engineHours: float
    places: list[int]
    providers: list[str]
    relationships: dict[str, Any]
    tags: list[str]
    attributes: dict[str, Attribute]
    v: list[int]
