"""Coarse and fine instructions: content, identifiable goals and a closed vocabulary."""

import collections
import math
import random

import numpy as np
import pytest

from janusvln_ros.sim import episodes as episodes_module
from janusvln_ros.sim.instructions import (coarse_instruction, fine_instruction,
                                           instruction_vocabulary, INSTRUCTION_WORDS,
                                           label_is_unique, make_instruction, tokenize)
from janusvln_ros.sim.splits import generate_house_episodes, house_config, split_house_seeds
from janusvln_ros.sim.world import build_house, FURNITURE, ROOM_TYPES


@pytest.fixture(scope='module')
def houses():
    """The first 30 houses of each split (the house only: no occupancy grid, fast)."""
    seeds = [s for split in ('train', 'val_unseen') for s in split_house_seeds(split)[:30]]
    return [build_house(house_config(seed)) for seed in seeds]


@pytest.fixture(scope='module')
def real_episodes():
    return [e for seed in (5000, 5001, 5003) for e in generate_house_episodes('val_unseen', seed)]


def _route(house, a, b):
    """Room indices from room ``a`` to room ``b`` through doors (breadth-first)."""
    links = collections.defaultdict(list)
    for door in house.doors:
        links[door.room_a].append((door.room_b, door))
        links[door.room_b].append((door.room_a, door))
    previous = {a: None}
    queue = collections.deque([a])
    while queue:
        room = queue.popleft()
        for other, door in links[room]:
            if other not in previous:
                previous[other] = (room, door)
                queue.append(other)
    steps = []
    while previous[b] is not None:
        room, door = previous[b]
        steps.append((room, b, door))
        b = room
    return steps[::-1]


def random_path(house, rng):
    """A plausible path through doors from a random start room to a random goal object."""
    start_room = rng.choice(house.rooms)
    goal = rng.choice([o for o in house.objects if o.room != start_room.index])

    def inside(room, margin=0.6):
        return (rng.uniform(room.x0 + margin, room.x1 - margin),
                rng.uniform(room.y0 + margin, room.y1 - margin))

    points = [inside(start_room)]
    for a, b, door in _route(house, start_room.index, goal.room):
        ra, rb = house.rooms[a], house.rooms[b]
        ux, uy = np.sign(rb.centre[0] - ra.centre[0]), np.sign(rb.centre[1] - ra.centre[1])
        points += [(door.x - 0.4 * ux, door.y - 0.4 * uy), (door.x + 0.4 * ux, door.y + 0.4 * uy)]
        if b != goal.room and rng.random() < 0.5:
            points.append(inside(rb))
    cx, cy = house.rooms[goal.room].centre
    points.append((goal.x + 0.4 * (cx - goal.x), goal.y + 0.4 * (cy - goal.y)))
    yaw = math.radians(15 * rng.randrange(-12, 12))
    return start_room, goal, np.asarray(points), yaw


def test_vocabulary_is_closed(houses, real_episodes):
    vocabulary = set(instruction_vocabulary())
    assert list(INSTRUCTION_WORDS) == sorted(vocabulary) == instruction_vocabulary()
    assert all(w.isalpha() and w == w.lower() for w in vocabulary - {'.', ','})
    assert {'.', ','} <= vocabulary
    names = list(ROOM_TYPES) + [f'{c} {k}' for opts in FURNITURE.values() for k, c in opts]
    assert set(tokenize(' '.join(names))) <= vocabulary
    rng = random.Random(0)
    texts = [e.instruction for e in real_episodes + episodes_module.load_episodes()]
    for house in houses:
        for _ in range(20):
            start_room, goal, path, yaw = random_path(house, rng)
            texts.append(fine_instruction(house, path, yaw, goal, rng))
            texts.append(coarse_instruction(house, goal, rng, start_room))
            texts.append(make_instruction(house, path, yaw, goal, rng))
    used = collections.Counter(w for text in texts for w in tokenize(text))
    assert set(used) <= vocabulary, set(used) - vocabulary
    # The generator really uses most of the vocabulary (the list is not padded).
    assert len(set(used)) >= 0.9 * len(vocabulary)


def test_coarse_names_goal_room_and_object(houses):
    rng = random.Random(1)
    wordings = set()
    for house in houses[:10]:
        for goal in house.objects:
            room = house.rooms[goal.room].kind
            for start in (None, house.rooms[(goal.room + 1) % len(house.rooms)], 'office'):
                text = coarse_instruction(house, goal, rng, start)
                assert goal.label in text and room in text
                if start is None:
                    wordings.add(text.replace(goal.label, 'X').replace(room, 'R'))
                    assert text.count('.') <= 2
    assert len(wordings) >= 4


def test_goal_is_identifiable_by_room_and_label(houses):
    """Labels repeat across rooms (green plant, brown table) but never within one room."""
    repeated = 0
    for house in houses:
        for goal in house.objects:
            same = [o for o in house.objects if o.label == goal.label]
            assert [o for o in same if o.room == goal.room] == [goal]
            repeated += not label_is_unique(house, goal)
    assert repeated > 0  # the test houses do hold ambiguous labels


def test_fine_names_start_rooms_turns_and_goal(houses):
    rng = random.Random(2)
    for house in houses:
        for _ in range(3):
            start_room, goal, path, yaw = random_path(house, rng)
            text = fine_instruction(house, path, yaw, goal, rng)
            sentences = [s for s in text.split('.') if s.strip()]
            assert start_room.kind in sentences[0]
            # The last sentence enters the goal's room and stops at the goal.
            assert house.rooms[goal.room].kind in sentences[-1] and goal.label in sentences[-1]


def test_fine_describes_an_l_shaped_path():
    house = build_house(house_config(1000))  # 2 x 2 rooms of 4 m: 0 1 south, 2 3 north
    assert (house.config.rows, house.config.cols) == (2, 2)
    kinds = [r.kind for r in house.rooms]
    goal = next(o for o in house.objects if o.room == 3)
    path = np.array([(2.0, 2.0), (6.0, 2.0), (6.0, 6.5)])  # east through room 1, then north
    rng = random.Random(3)
    straight = fine_instruction(house, path, 0.0, goal, rng)
    first, middle, last = [s.strip() for s in straight.split('.') if s.strip()]
    assert first.split()[0] in ('Go', 'Walk') and kinds[0] in first
    assert kinds[1] in middle and 'turn left' in middle
    assert kinds[3] in last and goal.label in last
    assert fine_instruction(house, path, math.pi, goal, rng).startswith('Turn around')
    assert fine_instruction(house, path, math.pi / 2, goal, rng).startswith('Turn right')
    assert fine_instruction(house, path, math.radians(-25), goal, rng).startswith(
        'Turn slightly left')
    mirrored = np.array([(2.0, 6.0), (6.0, 6.0), (6.0, 1.5)])  # east, then south: right
    goal_1 = next(o for o in house.objects if o.room == 1)
    assert 'turn right' in fine_instruction(house, mirrored, 0.0, goal_1, rng)


def test_different_goals_give_different_instructions(houses, real_episodes):
    by_start = collections.defaultdict(list)
    for e in real_episodes:
        by_start[(e.house, e.start, e.style)].append(e.instruction)
    assert len(by_start) >= 6
    for texts in by_start.values():
        assert len(texts) == len(set(texts)) >= 2
    rng = random.Random(4)
    for house in houses[:10]:
        start = house.rooms[0]
        for style in ('coarse', 'fine'):
            texts = []
            for goal in house.objects:
                if goal.room == start.index:
                    continue
                path = np.array([start.centre, house.rooms[goal.room].centre])
                texts.append(coarse_instruction(house, goal, rng) if style == 'coarse' else
                             fine_instruction(house, path, 0.0, goal, rng))
            assert len(texts) == len(set(texts))


def test_wording_is_seeded(houses):
    house = houses[0]
    path = np.array([house.rooms[0].centre, house.rooms[-1].centre])
    goal = next(o for o in house.objects if o.room == len(house.rooms) - 1)
    for make in (lambda rng: fine_instruction(house, path, 0.3, goal, rng),
                 lambda rng: coarse_instruction(house, goal, rng, house.rooms[0])):
        assert make(random.Random(7)) == make(random.Random(7))


def test_make_instruction_is_still_importable_from_episodes():
    assert episodes_module.make_instruction is make_instruction
