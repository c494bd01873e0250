"""Crawling stage: the Scrapy project that collects auction listings and their photos."""
