"""Templated navigation instructions for the generated houses, and their closed vocabulary.

Two styles describe the same path:

* **coarse** (R2R-like): the goal's room and the goal object with its colour, optionally the
  start room, e.g. "Go to the kitchen and stop next to the white fridge."
* **fine** (RxR-like): the turns, the rooms passed, landmarks passed and then the goal, e.g.
  "Turn left, walk past the red sofa and leave the living room. Go through the hallway and turn
  right. Enter the kitchen and stop next to the white fridge."

Both always name the goal's room. Within one room every object category is unique, so the goal's
room plus its colour and category pick exactly one object of the house, even where the same
label repeats in other rooms (a green plant in the living room, hallway and dining room).

Every word an instruction can contain comes from the phrase tables below, the room types, the
furniture categories and the colour names; :func:`instruction_vocabulary` lists them, case-folded,
with the punctuation used. :func:`make_instruction` is the original template of the built-in
episode set (``data/episodes.json``) and must keep its exact output.
"""

from __future__ import annotations

import math
import random
import re

import numpy as np

from janusvln_ros.sim.navmap import resample_path
from janusvln_ros.sim.world import angle_diff, FURNITURE, House, Room, ROOM_TYPES, SceneObject


# -- phrase tables (every instruction word comes from these, or from the world's names) ---------
LEAVE = ('leave', 'walk out of', 'exit', 'go out of')
THROUGH = ('walk through', 'go through', 'cross', 'pass through')
ENTER = ('enter', 'go into', 'walk into')
PASS = ('walk past', 'go past', 'pass')
STOP = ('stop next to', 'wait by', 'stop beside', 'stop in front of')
STRAIGHT = ('go straight', 'walk forward')
COARSE_TEMPLATES = (
    'Go to the {room} and stop next to the {goal}.',
    'Walk to the {goal} in the {room}.',
    'Find the {goal} in the {room} and wait there.',
    'Head into the {room} and stop beside the {goal}.',
    'The {goal} is in the {room}. Go there and stop next to it.',
    'Your goal is the {goal} in the {room}.',
)
COARSE_START = ('Leave the {start}.', 'Start by leaving the {start}.', 'Exit the {start}.')
# The legacy template of :func:`make_instruction` (the built-in episodes).
_LEGACY = ('Turn left right around and leave walk out of exit the. Walk through Go through Cross '
           'the, past the, and turn. Enter the, turn and stop next to wait by stop beside.')
_CONNECTIVES = 'and then , .'
_WORD = re.compile(r'[A-Za-z]+|[^\sA-Za-z]')
# Landmarks: objects whose footprint comes within this many metres of the path.
LANDMARK_RADIUS_M = 1.0
# Fine instructions: heading changes from this many degrees to 35 are 'slight' turns; corners
# of one direction closer than TURN_MERGE_M along the path make one turn.
SLIGHT_TURN_DEG = 20.0
TURN_MERGE_M = 1.0


def tokenize(text: str) -> list[str]:
    """Split text into lowercase words and single punctuation characters."""
    return [w.lower() for w in _WORD.findall(text)]


def _vocabulary() -> tuple[str, ...]:
    texts = [*LEAVE, *THROUGH, *ENTER, *PASS, *STOP, *STRAIGHT, *COARSE_TEMPLATES,
             *COARSE_START, _LEGACY, _CONNECTIVES, 'turn slightly left right around',
             *ROOM_TYPES]
    for options in FURNITURE.values():
        texts += [f'{colour} {category}' for category, colour in options]
    words: set[str] = set()
    for text in texts:
        words.update(tokenize(re.sub(r'\{\w+\}', ' ', text)))
    return tuple(sorted(words))


#: Every word and punctuation mark any generated instruction can contain (case-folded: the first
#: word of a sentence is capitalised in the instruction).
INSTRUCTION_WORDS: tuple[str, ...] = _vocabulary()


def instruction_vocabulary() -> list[str]:
    """Every word and punctuation mark of any instruction, lowercase, sorted."""
    return list(INSTRUCTION_WORDS)


# -- geometry helpers ---------------------------------------------------------------------------
def _turn_word(delta: float) -> str:
    """'left', 'right', 'around' or '' for a heading change ``delta`` (radians, CCW > 0)."""
    deg = math.degrees(delta)
    if abs(deg) > 135:
        return 'around'
    if deg > 35:
        return 'left'
    if deg < -35:
        return 'right'
    return ''


def _heading(a: np.ndarray, b: np.ndarray) -> float:
    return math.atan2(b[1] - a[1], b[0] - a[0])


def _fine_turn_word(delta: float) -> str:
    """Like :func:`_turn_word`, with 'slightly left/right' from ``SLIGHT_TURN_DEG``."""
    word = _turn_word(delta)
    if word or abs(math.degrees(delta)) < SLIGHT_TURN_DEG:
        return word
    return 'slightly left' if delta > 0 else 'slightly right'


def _turns(path: np.ndarray, corner_arc: np.ndarray) -> list[tuple[float, str]]:
    """The turns of a taut path as ``[(arc length, word), ...]``.

    A taut path bends in several small corners where a person would make one turn (around a
    door jamb, say): consecutive corners of one direction less than ``TURN_MERGE_M`` apart
    count as one turn of their summed angle, placed at the first corner.
    """
    groups: list[list[float]] = []  # [arc of the first corner, arc of the last, angle]
    for k in range(1, len(path) - 1):
        delta = angle_diff(_heading(path[k], path[k + 1]), _heading(path[k - 1], path[k]))
        at = float(corner_arc[k])
        if groups and at - groups[-1][1] < TURN_MERGE_M and (groups[-1][2] > 0) == (delta > 0):
            groups[-1][1] = at
            groups[-1][2] += delta
        else:
            groups.append([at, at, delta])
    out = []
    for first, _, delta in groups:
        word = _fine_turn_word(delta)
        if word:
            out.append((first, word))
    return out


def _footprint_distance(obj: SceneObject, points: np.ndarray) -> np.ndarray:
    """Distance from each of ``points`` (``(m, 2)``) to the object's footprint rectangle."""
    dx = np.maximum(np.abs(points[:, 0] - obj.x) - obj.size_x / 2, 0.0)
    dy = np.maximum(np.abs(points[:, 1] - obj.y) - obj.size_y / 2, 0.0)
    return np.hypot(dx, dy)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(clauses: list[str]) -> str:
    """One sentence from clauses: 'a, b and c.' with the first letter capitalised."""
    if len(clauses) == 1:
        text = clauses[0]
    else:
        text = ', '.join(clauses[:-1]) + ' and ' + clauses[-1]
    return _cap(text) + '.'


def label_is_unique(house: House, obj: SceneObject) -> bool:
    """Whether no other object of the house has the same colour and category."""
    return sum(o.label == obj.label for o in house.objects) == 1


# -- coarse -------------------------------------------------------------------------------------
def coarse_instruction(house: House, goal: SceneObject, rng: random.Random,
                       start_room: Room | str | None = None) -> str:
    """A short, R2R-like instruction naming the goal's room and the goal object.

    Args:
        house: The house.
        goal: The goal object.
        rng: Random choice of wording.
        start_room: The start room (or its type); when given, some wordings name it too.

    Returns:
        E.g. "Leave the office. Find the white fridge in the kitchen and wait there."
    """
    room = house.rooms[goal.room].kind
    text = rng.choice(COARSE_TEMPLATES).format(room=room, goal=goal.label)
    if start_room is not None and rng.random() < 0.5:
        start = start_room if isinstance(start_room, str) else start_room.kind
        text = rng.choice(COARSE_START).format(start=start) + ' ' + text
    return text


# -- fine ---------------------------------------------------------------------------------------
def _room_visits(house: House, dense: np.ndarray) -> list[tuple[int, int]]:
    """``[(room index, index of the first dense point in it), ...]`` along the path."""
    visits: list[tuple[int, int]] = []
    for k, (x, y) in enumerate(dense):
        room = house.room_at(x, y)
        if room is not None and (not visits or visits[-1][0] != room.index):
            visits.append((room.index, k))
    return visits


def fine_instruction(house: House, path: np.ndarray, start_yaw: float, goal: SceneObject,
                     rng: random.Random) -> str:
    """A step-by-step, RxR-like instruction: turns, rooms, landmarks passed, then the goal.

    One sentence per room the path visits. The first says how to turn from the start heading
    and which room to leave; the middle ones name the room crossed; the last enters the goal's
    room (always named) and stops at the goal. Turns at the path's corners (over 35 degrees)
    and the nearest object passed in each room (its footprint within ``LANDMARK_RADIUS_M`` of
    the path, never the goal itself) come in the order they happen.

    Args:
        house: The house.
        path: ``(k, 2)`` taut path from start to goal (corners are its inner vertices).
        start_yaw: The agent's initial heading in radians.
        goal: The goal object.
        rng: Random choice of wording.

    Returns:
        The instruction.
    """
    path = np.asarray(path, dtype=np.float64)
    dense = resample_path(path, 0.1)
    visits = _room_visits(house, dense)
    if not visits:  # degenerate: the path lies outside the house
        return _join([f'{rng.choice(STOP)} the {goal.label}'])
    bounds = [k for _, k in visits[1:]] + [len(dense)]
    # Arc length along the dense path, and of every corner of the taut path.
    corner_arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0),
                                                                 axis=1))])
    # The dense points are the stations of resample_path: every 0.1 m, then the end.
    arc = np.minimum(np.arange(len(dense)) * 0.1, corner_arc[-1])
    events: list[tuple[float, str, str]] = [  # (arc length, kind, word)
        (at, 'turn', word) for at, word in _turns(path, corner_arc)]
    for index, (room_index, first) in enumerate(visits):
        last = bounds[index]
        best: tuple[float, int, SceneObject] | None = None
        for obj in house.objects:
            if obj.room != room_index or obj.name == goal.name:
                continue
            dist = _footprint_distance(obj, dense[first:last])
            k = int(np.argmin(dist))
            if dist[k] <= LANDMARK_RADIUS_M and (best is None or dist[k] < best[0]):
                best = (float(dist[k]), first + k, obj)
        if best is not None:
            events.append((float(arc[best[1]]), 'pass', best[2].label))
    events.sort(key=lambda e: e[0])
    room_arc = [float(arc[k]) for _, k in visits] + [math.inf]

    kinds = {r.index: r.kind for r in house.rooms}
    first_turn = _fine_turn_word(angle_diff(_heading(path[0], path[1]), start_yaw)) \
        if len(path) > 1 else ''
    sentences = []
    for index, (room_index, _) in enumerate(visits):
        room = kinds[room_index]
        clauses = []
        if index == 0:
            clauses.append(f'turn {first_turn}' if first_turn else rng.choice(STRAIGHT))
        elif index < len(visits) - 1:
            clauses.append(f'{rng.choice(THROUGH)} the {room}')
        else:
            clauses.append(f'{rng.choice(ENTER)} the {room}')
        for at, kind, word in events:
            if not room_arc[index] <= at < room_arc[index + 1]:
                continue
            clauses.append(f'turn {word}' if kind == 'turn' else f'{rng.choice(PASS)} the {word}')
        if index == 0 and len(visits) > 1:
            clauses.append(f'{rng.choice(LEAVE)} the {room}')
        if index == len(visits) - 1:
            clauses.append(f'{rng.choice(STOP)} the {goal.label}')
        if len(clauses) > 2 and rng.random() < 0.3:
            clauses[-1] = 'then ' + clauses[-1]
        sentences.append(_join(clauses))
    return ' '.join(sentences)


# -- the built-in set's template (frozen: data/episodes.json depends on its exact output) -------
def make_instruction(house: House, path: np.ndarray, start_yaw: float, goal: SceneObject,
                     rng: random.Random) -> str:
    """Template an instruction from the rooms, turns and landmarks along ``path``.

    The template of the built-in episode set; its output (and its use of ``rng``) must not
    change. New episodes use :func:`fine_instruction`.

    Args:
        house: The house.
        path: ``(k, 2)`` taut path from start to goal (corners are its inner vertices).
        start_yaw: The agent's initial heading in radians.
        goal: The goal object.
        rng: Random choice of wording.

    Returns:
        One instruction, e.g. "Turn left and leave the office. Walk through the hallway, past
        the green bench, and turn right. Enter the kitchen and stop next to the white fridge."
    """
    dense = resample_path(path, 0.1)
    rooms = []
    for x, y in dense:
        room = house.room_at(x, y)
        if room is not None and (not rooms or rooms[-1] != room.index):
            rooms.append(room.index)
    # Turns at the path's corners, assigned to the room they are in.
    turns: dict[int, list[str]] = {}
    for k in range(1, len(path) - 1):
        word = _turn_word(angle_diff(_heading(path[k], path[k + 1]),
                                     _heading(path[k - 1], path[k])))
        room = house.room_at(*path[k])
        if word in ('left', 'right') and room is not None:
            turns.setdefault(room.index, []).append(word)
    kinds = {r.index: r.kind for r in house.rooms}
    first = _turn_word(angle_diff(_heading(path[0], path[1]), start_yaw)) if len(path) > 1 else ''
    leave = rng.choice(('leave', 'walk out of', 'exit'))
    if first == 'around':
        parts = [f'Turn around and {leave} the {kinds[rooms[0]]}.']
    elif first:
        parts = [f'Turn {first} and {leave} the {kinds[rooms[0]]}.']
    else:
        parts = [f'{leave.capitalize()} the {kinds[rooms[0]]}.']
    for index in rooms[1:-1]:
        verb = rng.choice(('Walk through', 'Go through', 'Cross'))
        text = f'{verb} the {kinds[index]}'
        landmarks = [o for o in house.objects if o.room == index]
        if landmarks:
            seen = min(landmarks, key=lambda o: float(np.min(
                np.hypot(dense[:, 0] - o.x, dense[:, 1] - o.y))))
            text += f', past the {seen.label}'
        if index in turns:
            text += f', and turn {turns[index][0]}'
        parts.append(text + '.')
    end = rng.choice(('stop next to', 'wait by', 'stop beside'))
    if len(rooms) > 1:
        enter = f'Enter the {kinds[rooms[-1]]}'
        if rooms[-1] in turns:
            enter += f', turn {turns[rooms[-1]][-1]}'
        parts.append(f'{enter} and {end} the {goal.label}.')
    else:
        parts.append(f'{end.capitalize()} the {goal.label}.')
    return ' '.join(parts)
