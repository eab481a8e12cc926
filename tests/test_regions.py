import numpy as np
import pytest

from cropmeta import regions
from cropmeta.errors import InputError


def test_every_country_by_name_and_bounds():
    names = regions.region_names()
    assert len(names) > 200
    k = regions.get_region("kenya")
    # Natural Earth 50m bounds of Kenya [33.900, -4.692, 41.884, 5.492] (simplification moves them < 0.02°)
    np.testing.assert_allclose(k.bounds, [33.900, -4.692, 41.884, 5.492], atol=0.02)
    lat, lon = k.centre
    assert k.contains(lat, lon)[0]
    assert regions.get_region("TGO").name == "Togo"
    assert regions.get_region("south_africa").name == "South Africa"


def test_multipolygon_country():
    fr = regions.get_region("France")
    assert fr.geometry.geom_type == "MultiPolygon"
    assert fr.contains(np.array([48.85, 4.0]), np.array([2.35, -52.3])).tolist() == [True, True]  # Paris, Guiana
    lat, lon = fr.centre
    assert fr.geometry.contains(__import__("shapely").Point(lon, lat))


def test_unknown_region_lists_close_matches():
    with pytest.raises(InputError, match="Kenya"):
        regions.get_region("kenia")


def test_bbox_and_file(tmp_path):
    r = regions.region_from_bbox("1,2,3,4")
    assert r.bounds == (1, 2, 3, 4)
    with pytest.raises(InputError, match="bbox"):
        regions.region_from_bbox("3,2,1,4")
    import geopandas as gpd
    from shapely.geometry import box

    gpd.GeoDataFrame(geometry=[box(500000, 0, 510000, 10000)], crs="EPSG:32631").to_file(tmp_path / "r.gpkg")
    rf = regions.region_from_file(tmp_path / "r.gpkg")
    assert rf.bounds[0] == pytest.approx(3.0, abs=0.01)  # UTM 31N false easting → lon 3°E
    with pytest.raises(InputError, match="exactly one"):
        regions.resolve_region("kenya", bbox="1,2,3,4")
