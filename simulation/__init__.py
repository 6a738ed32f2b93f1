from .city import CityParameters, simulate_city

__all__ = ["CityParameters", "simulate_city"]
