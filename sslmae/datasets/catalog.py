"""Catalog of the datasets the SSL-MAE authors used: task, label count, image count and,
where the labels are fixed by the dataset's release, their names in release order.

`match_catalog(label_names, n_images)` names the entry an ingested dataset matches (same
label names, in any order, or only the same label count where the catalog has no names).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    task: str  # mlc | mcc
    num_labels: int | None  # None: not recorded here
    num_images: int | None
    label_names: tuple[str, ...] | None = None  # None: not fixed here (long or versioned lists)


UCM_MLC_LABELS = ("airplane", "bare-soil", "buildings", "cars", "chaparral", "court", "dock", "field",
                  "grass", "mobile-home", "pavement", "sand", "sea", "ship", "tanks", "trees", "water")

CATALOG: dict[str, CatalogEntry] = {e.name: e for e in (
    CatalogEntry("UCM_mlc", "mlc", 17, 2100, UCM_MLC_LABELS),
    CatalogEntry("AID_mlc", "mlc", 17, 3000, UCM_MLC_LABELS),  # same 17 labels as UCM_mlc
    CatalogEntry("MLRSNet", "mlc", 60, 109161),
    CatalogEntry("DFC_15", "mlc", 8, 3342,
                 ("impervious", "water", "clutter", "vegetation", "building", "tree", "boat", "car")),
    CatalogEntry("BEN_43", "mlc", 43, 590326),
    CatalogEntry("Ankara", "mlc", None, None),  # hyperspectral archive; counts depend on the release used
    CatalogEntry("UCM_mcc", "mcc", 21, 2100, (
        "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
        "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
        "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
        "sparseresidential", "storagetanks", "tenniscourt")),
    CatalogEntry("AID_mcc", "mcc", 30, 10000, (
        "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church", "Commercial",
        "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow", "MediumResidential",
        "Mountain", "Park", "Parking", "Playground", "Pond", "Port", "RailwayStation", "Resort", "River",
        "School", "SparseResidential", "Square", "Stadium", "StorageTanks", "Viaduct")),
    CatalogEntry("RESISC45", "mcc", 45, 31500, (
        "airplane", "airport", "baseball_diamond", "basketball_court", "beach", "bridge", "chaparral",
        "church", "circular_farmland", "cloud", "commercial_area", "dense_residential", "desert", "forest",
        "freeway", "golf_course", "ground_track_field", "harbor", "industrial_area", "intersection",
        "island", "lake", "meadow", "medium_residential", "mobile_home_park", "mountain", "overpass",
        "palace", "parking_lot", "railway", "railway_station", "rectangular_farmland", "river",
        "roundabout", "runway", "sea_ice", "ship", "snowberg", "sparse_residential", "stadium",
        "storage_tank", "tennis_court", "terrace", "thermal_power_station", "wetland")),
    CatalogEntry("RSSCN7", "mcc", 7, 2800,
                 ("Field", "Forest", "Grass", "Industry", "Parking", "Resident", "RiverLake")),
    CatalogEntry("OPTIMAL-31", "mcc", 31, 1860),
)}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def match_catalog(label_names: list[str], n_images: int) -> CatalogEntry | None:
    """The entry with the same label names (case and punctuation ignored), preferring the
    one whose image count matches; None when no entry has these labels."""
    names = sorted(_norm(n) for n in label_names)
    hits = [e for e in CATALOG.values() if e.label_names and sorted(_norm(n) for n in e.label_names) == names]
    if not hits:
        return None
    exact = [e for e in hits if e.num_images == n_images]
    return (exact or hits)[0]
