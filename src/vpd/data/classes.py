"""Class lists that model configs and datasets share."""

# The 27 NYUv2 scene classes in the order of official VPD's nyu_class_list.json; class ids index the class-embedding
# buffer of the official checkpoints, so the order is part of the checkpoint format ("excercise" sic).
NYU_SCENE_CLASSES: tuple[str, ...] = (
    "printer_room", "bathroom", "living_room", "study", "conference_room", "study_room", "kitchen", "home_office",
    "bedroom", "dinette", "playroom", "indoor_balcony", "laundry_room", "basement", "excercise_room", "foyer",
    "home_storage", "cafe", "furniture_store", "office_kitchen", "student_lounge", "dining_room", "reception_room",
    "computer_lab", "classroom", "office", "bookstore",
)  # fmt: skip


# The 150 ADE20K (SceneParsing / ADEChallengeData2016) classes in the official order: class id i is annotation value
# i + 1 (0 is "other", ignored). Spelled as mmsegmentation spells them, "bed " with its trailing space included, since
# VPD's class embeddings were computed from these strings.
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed ", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
