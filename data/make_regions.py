"""Rebuild data/regions.geojson from Natural Earth 50m admin-0 (public domain).

    .venv/bin/python data/make_regions.py ../shared/data/natural_earth_admin0_50m/ne_50m_admin_0_countries.shp
"""

import sys

from cropmeta.regions import build_region_file

if __name__ == "__main__":
    src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/natural_earth_admin0_50m/ne_50m_admin_0_countries.shp"
    print(build_region_file(src))
