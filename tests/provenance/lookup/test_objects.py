"""Object-level change descriptions on plain values: every kind, the region gate, the score gate, the homography."""

from __future__ import annotations

import numpy as np
import pytest

from provenance.hashing import DetectedObject
from provenance.lookup.objects import describe_object_changes, project_box
from provenance.lookup.verdict import ObjectChange, Region

EYE = np.eye(3)
SIZE = (640, 480)


def obj(label: str, box: tuple[float, float, float, float], score: float = 0.6) -> DetectedObject:
    return DetectedObject(label, score, box)


def kinds(changes: tuple[ObjectChange, ...]) -> list[tuple[str, str]]:
    return [(c.kind, c.label) for c in changes]


def test_an_object_only_in_the_copy_inside_a_changed_region_is_added():
    person = obj("person", (100, 80, 180, 240))
    changes = describe_object_changes([person], [], EYE, [Region(95, 75, 90, 170)], SIZE)
    assert kinds(changes) == [("added", "person")]
    c = changes[0]
    assert (c.box.x, c.box.y, c.box.width, c.box.height) == (100, 80, 80, 160)
    assert c.near == (140, 160)
    assert c.description == "person added near (140, 160)"
    assert c.to_obj()["near"] == [140, 160] and c.to_obj()["kind"] == "added"


def test_an_object_only_in_the_original_inside_a_changed_region_is_removed():
    car = obj("car", (300, 200, 420, 280))
    changes = describe_object_changes([], [car], EYE, [Region(310, 210, 100, 60)], SIZE)
    assert kinds(changes) == [("removed", "car")]


def test_nothing_is_claimed_outside_the_changed_regions():
    # the detector saw a dog in the copy only, but the comparison found no change there: detector noise
    dog = obj("dog", (10, 10, 60, 60))
    assert describe_object_changes([dog], [], EYE, [Region(400, 300, 50, 50)], SIZE) == ()
    assert describe_object_changes([dog], [], EYE, [], SIZE) == ()


def test_a_faint_partner_prevents_an_addition_and_faint_objects_are_never_claimed():
    strong = obj("person", (100, 80, 180, 240), score=0.7)
    faint_in_original = obj("person", (102, 82, 178, 238), score=0.18)
    region = [Region(100, 80, 80, 160)]
    # present in both (the original faintly): not "added"; a region over it makes it "changed" at most
    assert [c.kind for c in describe_object_changes([strong], [faint_in_original], EYE, region, SIZE)] == ["changed"]
    # a faint object alone is below the claim score: nothing said
    assert describe_object_changes([obj("person", (100, 80, 180, 240), 0.2)], [], EYE, region, SIZE) == ()


def test_different_labels_at_the_same_place_are_a_replacement():
    changes = describe_object_changes([obj("cat", (200, 100, 300, 220))], [obj("dog", (205, 95, 298, 225))], EYE,
                                      [Region(200, 100, 100, 120)], SIZE)
    assert kinds(changes) == [("replaced", "cat")]
    assert changes[0].was == "dog" and changes[0].description.startswith("dog replaced by cat near")


def test_an_addition_explains_its_region_so_the_enclosing_object_is_not_also_changed():
    bed = obj("bed", (0, 100, 640, 480))
    person = obj("person", (200, 150, 300, 300))
    region = [Region(195, 145, 110, 160)]
    changes = describe_object_changes([bed, person], [bed], EYE, region, SIZE)
    assert kinds(changes) == [("added", "person")]
    # with no addition, a change inside the bed is described as the bed changed
    assert kinds(describe_object_changes([bed], [bed], EYE, region, SIZE)) == [("changed", "bed")]


def test_query_boxes_are_carried_into_the_original_frame_by_the_homography():
    # the copy is the original at half size, shifted by (10, 20): query -> original = scale 2, then shift back
    h = np.array([[2.0, 0.0, -20.0], [0.0, 2.0, -40.0], [0.0, 0.0, 1.0]])
    person_in_copy = obj("person", (60, 60, 100, 140))  # -> (100, 80, 180, 240) in the original
    assert project_box(person_in_copy.box, h, SIZE) == pytest.approx((100.0, 80.0, 180.0, 240.0))
    changes = describe_object_changes([person_in_copy], [], h, [Region(100, 80, 80, 160)], SIZE)
    assert kinds(changes) == [("added", "person")] and changes[0].near == (140, 160)


def test_mirrored_homography_and_degenerate_projections():
    flip = np.array([[-1.0, 0.0, SIZE[0] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    box = project_box((0, 0, 100, 50), flip, SIZE)
    assert box == pytest.approx((539.0, 0.0, 639.0, 50.0))
    # entirely outside the image, or through the line at infinity: dropped, never an error
    assert project_box((0, 0, 10, 10), np.array([[1.0, 0, 5000], [0, 1, 0], [0, 0, 1]]), SIZE) is None
    assert project_box((0, 0, 10, 10), np.array([[1.0, 0, 0], [0, 1, 0], [-1, 0, 1]]), SIZE) is None


def test_changes_are_reported_largest_first():
    big, small = obj("bus", (0, 0, 300, 200)), obj("cup", (400, 300, 420, 330))
    changes = describe_object_changes([big, small], [], EYE, [Region(0, 0, 300, 200), Region(400, 300, 20, 30)], SIZE)
    assert kinds(changes) == [("added", "bus"), ("added", "cup")]
