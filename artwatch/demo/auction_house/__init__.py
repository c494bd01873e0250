"""The local auction house: real HTTP servers on loopback that the crawler, tests and demo crawl.

Three styles (server-rendered HTML, JSON API, JavaScript-rendered), each with the things real
sites do to crawlers (robots.txt, 429 + Retry-After, dead and non-image photos, relists,
changing photos, a huge photo, broken markup). Content is a pure function of a seed and an
optional generated catalogue.
"""

from artwatch.demo.auction_house.model import HouseConfig, HouseModel, Lot, is_good_photo
from artwatch.demo.auction_house.photos import Catalogue
from artwatch.demo.auction_house.server import AuctionHouse, default_configs, start_houses

__all__ = [
    "AuctionHouse",
    "Catalogue",
    "HouseConfig",
    "HouseModel",
    "Lot",
    "default_configs",
    "is_good_photo",
    "start_houses",
]
