"""Class lists that model configs and datasets share."""

# The 27 NYUv2 scene classes in the order of official VPD's nyu_class_list.json; class ids index the class-embedding
# buffer of the official checkpoints, so the order is part of the checkpoint format ("excercise" sic).
NYU_SCENE_CLASSES: tuple[str, ...] = (
    "printer_room", "bathroom", "living_room", "study", "conference_room", "study_room", "kitchen", "home_office",
    "bedroom", "dinette", "playroom", "indoor_balcony", "laundry_room", "basement", "excercise_room", "foyer",
    "home_storage", "cafe", "furniture_store", "office_kitchen", "student_lounge", "dining_room", "reception_room",
    "computer_lab", "classroom", "office", "bookstore",
)  # fmt: skip
