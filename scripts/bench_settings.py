"""Settings for `make bench` only: the product's settings plus a hello-world route.

The hello view (bench_urls.py) is the ceiling the board and the move are compared to;
it never reaches the product's URLs.
"""

from crm.settings import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
