"""``cropmeta view MAP``: one self-contained HTML file to look at a map in a browser.

The map's probability (at most ``max_px`` on its long side, nodata transparent) is embedded as a PNG
data URL. Online, the page loads Leaflet and puts the map over an OpenStreetMap basemap (the image
placed on the map's EPSG:4326 bounds); offline (no Leaflet), it draws the same image on its own grid
with longitude/latitude ticks. Either way the title, the legend and the crop share and area are on the
page, and nothing but Leaflet and the basemap tiles is fetched.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from cropmeta._fs import atomic_write_text
from cropmeta.errors import InputError
from cropmeta.mapping.quicklook import crop_area, map_title

LEAFLET_JS = "https://unpkg.com/leaflet@1.9.4/dist/leaflet.js"
LEAFLET_CSS = "https://unpkg.com/leaflet@1.9.4/dist/leaflet.css"


def _probability_png(map_path: Path, max_px: int) -> tuple[str, list[float]]:
    """(base64 PNG of the probability in the YlGn colour map, [west, south, east, north] in EPSG:4326)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from PIL import Image
    from rasterio.warp import transform_bounds

    with rasterio.open(map_path) as ds:
        scale = max(ds.width, ds.height) / max_px
        h, w = (ds.height, ds.width) if scale <= 1 else (max(1, round(ds.height / scale)),
                                                         max(1, round(ds.width / scale)))
        a = ds.read(1, out_shape=(h, w), resampling=Resampling.nearest, masked=True).astype("float32")
        if ds.dtypes[0] == "uint8":
            a = a * 0.01
        bounds = list(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)) if ds.crs else list(ds.bounds)
    a = np.ma.masked_invalid(a)
    rgba = (plt.get_cmap("YlGn")(np.clip(a.filled(0), 0, 1)) * 255).astype(np.uint8)
    rgba[..., 3] = np.where(np.ma.getmaskarray(a), 0, 230)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii"), bounds


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: system-ui, sans-serif; margin: 0; background: #fafafa; }}
 header {{ padding: 8px 14px; }} h1 {{ font-size: 18px; margin: 0 0 4px; }} p {{ margin: 0; font-size: 13px; color: #333; }}
 #map {{ position: relative; height: calc(100vh - 120px); min-height: 360px; margin: 0 14px; background: #fff;
        border: 1px solid #ccc; }}
 #grid img {{ position: absolute; image-rendering: pixelated; }}
 .tick {{ position: absolute; font-size: 11px; color: #444; }}
 .legend {{ margin: 6px 14px; font-size: 12px; }}
 .bar {{ display: inline-block; width: 160px; height: 10px; vertical-align: middle;
        background: linear-gradient(to right, #ffffe5, #d9f0a3, #78c679, #238443, #004529); }}
</style>
<link rel="stylesheet" href="{leaflet_css}">
</head><body>
<header><h1>{title}</h1><p>{summary}</p></header>
<div id="map"></div>
<div class="legend">P({positive}): 0 <span class="bar"></span> 1 &nbsp;·&nbsp; <span id="mode">map on its own grid
(offline)</span></div>
<script>
const IMG = "data:image/png;base64,{png}";
const B = {bounds};  // west, south, east, north (EPSG:4326)
function ownGrid() {{
  const el = document.getElementById("map");
  el.innerHTML = '<div id="grid"></div>';
  const g = document.getElementById("grid");
  const W = el.clientWidth - 60, H = el.clientHeight - 40;
  const aspect = (B[3] - B[1]) / Math.max(B[2] - B[0], 1e-12);
  let w = W, h = W * aspect; if (h > H) {{ h = H; w = H / aspect; }}
  const img = new Image(); img.src = IMG; img.alt = "crop map";
  img.style.left = "50px"; img.style.top = "10px"; img.style.width = w + "px"; img.style.height = h + "px";
  g.appendChild(img);
  for (let i = 0; i <= 4; i++) {{
    const lon = B[0] + (B[2] - B[0]) * i / 4, lat = B[3] - (B[3] - B[1]) * i / 4;
    const x = document.createElement("div"); x.className = "tick"; x.textContent = lon.toFixed(4) + "°";
    x.style.left = (50 + w * i / 4 - 20) + "px"; x.style.top = (14 + h) + "px"; g.appendChild(x);
    const y = document.createElement("div"); y.className = "tick"; y.textContent = lat.toFixed(4) + "°";
    y.style.left = "0px"; y.style.top = (4 + h * i / 4) + "px"; g.appendChild(y);
  }}
}}
function basemap() {{
  const m = L.map("map");
  L.tileLayer("https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png",
              {{maxZoom: 19, attribution: "&copy; OpenStreetMap contributors"}}).addTo(m);
  const b = [[B[1], B[0]], [B[3], B[2]]];
  L.imageOverlay(IMG, b, {{opacity: 0.85}}).addTo(m);
  m.fitBounds(b);
  document.getElementById("mode").textContent = "over an OpenStreetMap basemap";
}}
</script>
<script src="{leaflet_js}" onload="basemap()" onerror="ownGrid()"></script>
<script>setTimeout(function () {{ if (typeof L === "undefined") ownGrid(); }}, 1500);</script>
</body></html>
"""


def write_view(map_path: str | Path, out: str | Path | None = None, max_px: int = 1024) -> Path:
    """Write ``<map>.html`` (or ``out``) for the map at ``map_path``; returns its path."""
    map_path = Path(map_path)
    if not map_path.exists():
        raise InputError(f"{map_path}: map not found")
    out = Path(out) if out is not None else map_path.with_suffix(".html")
    if out.resolve() == map_path.resolve():
        raise InputError(f"--out {out}: that is the map itself; name an .html file")
    try:
        with rasterio.open(map_path) as ds:
            tags = ds.tags()
    except rasterio.errors.RasterioIOError as e:
        raise InputError(f"{map_path}: not a readable map ({e})") from e
    png, bounds = _probability_png(map_path, max_px)
    area = crop_area(map_path)
    positive = (json.loads(tags.get("TASK") or "null") or {}).get("crop") or "crop"
    share = f"{area['crop_share']:.1%}" if np.isfinite(area["crop_share"]) else "n/a"
    ha = f"{area['crop_area_ha']:,.0f} ha" if np.isfinite(area["crop_area_ha"]) else "area n/a"
    summary = (f"{positive}: {share} of {area['pixels']:,} mapped pixels ({ha}) · threshold "
               f"{tags.get('THRESHOLD', '0.5')} · {map_path.name}")
    page = _PAGE.format(title=html.escape(map_title(tags)), summary=html.escape(summary), png=png,
                        bounds=json.dumps([round(v, 8) for v in bounds]), positive=html.escape(str(positive)),
                        leaflet_js=LEAFLET_JS, leaflet_css=LEAFLET_CSS)
    atomic_write_text(out, page)
    return out


__all__ = ["write_view"]
