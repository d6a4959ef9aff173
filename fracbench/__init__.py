"""fracbench: are a model's features merely linearly decodable, or is it coherently organized?"""

__version__ = "0.1.0"
