"""The simulated world: cropmeta's offline default data source (docs/simulator.md).

``generate_world(out_dir, seed, scene_size, overwrite)`` writes a world (Earth-Engine-layout
GeoTIFF tiles, a GeoParquet label file, raster scenes with truth) that ingestion reads exactly like
a user's own data; ``ensure_world(seed)`` caches one under ``$CROPMETA_HOME/worlds/seed-<N>``;
``load_world(path)`` reads and validates its ``world.json``.
"""

from cropmeta.sim.world import ensure_world, generate_world, load_world, world_version

__all__ = ["generate_world", "ensure_world", "load_world", "world_version"]
