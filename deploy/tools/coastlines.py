#!/usr/bin/env python3
"""Make server/assets/coastlines.json: the Eastern Caribbean's land, for the
web map when no map tiles can be reached (at sea there is no network).

Input: land-10m.json of the npm package world-atlas (Natural Earth 1:10m,
public domain, as TopoJSON). Usage, from the repository root:

    npm pack world-atlas@2 && tar xzf world-atlas-*.tgz
    python3 deploy/tools/coastlines.py package/land-10m.json > server/assets/coastlines.json

Output: {"source": ..., "rings": [[[lon, lat], ...], ...]}: the land's
rings clipped to the box (Sutherland-Hodgman against its four edges, so a
continent's coast is cut at the edge rather than carried whole),
coordinates rounded to 0.002 degree (about 200 m), runs of points that
round to the same place dropped.
"""
import json
import sys

# The Eastern Caribbean and a margin: Puerto Rico to Trinidad and the coast
# of Venezuela.
WEST, EAST, SOUTH, NORTH = -68.0, -58.0, 9.5, 19.5


def arcs_of(topology):
    scale = topology["transform"]["scale"]
    shift = topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * scale[0] + shift[0], y * scale[1] + shift[1]))
        arcs.append(points)
    return arcs


def ring(arcs, indices):
    points = []
    for i in indices:
        arc = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
        points.extend(arc if not points else arc[1:])
    return points


def clip(points):
    """The part of a closed ring inside the box."""
    edges = [
        (lambda p: p[0] >= WEST, lambda a, b: cut_x(a, b, WEST)),
        (lambda p: p[0] <= EAST, lambda a, b: cut_x(a, b, EAST)),
        (lambda p: p[1] >= SOUTH, lambda a, b: cut_y(a, b, SOUTH)),
        (lambda p: p[1] <= NORTH, lambda a, b: cut_y(a, b, NORTH)),
    ]
    for inside, cut in edges:
        out = []
        for i, cur in enumerate(points):
            prev = points[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cut(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cut(prev, cur))
        points = out
        if not points:
            break
    return points


def cut_x(a, b, x):
    t = (x - a[0]) / (b[0] - a[0])
    return (x, a[1] + t * (b[1] - a[1]))


def cut_y(a, b, y):
    t = (y - a[1]) / (b[1] - a[1])
    return (a[0] + t * (b[0] - a[0]), y)


def main():
    topology = json.load(open(sys.argv[1]))
    arcs = arcs_of(topology)
    rings = []
    for geometry in topology["objects"]["land"]["geometries"]:
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        for polygon in polygons:
            for indices in polygon:
                points = clip(ring(arcs, indices))
                out = []
                for x, y in points:
                    p = [round(x / 0.002) * 0.002, round(y / 0.002) * 0.002]
                    p = [round(p[0], 3), round(p[1], 3)]
                    if not out or out[-1] != p:
                        out.append(p)
                if len(out) >= 4:
                    rings.append(out)
    json.dump(
        {
            "source": "Natural Earth 1:10m land (public domain), via world-atlas 2",
            "rings": rings,
        },
        sys.stdout,
        separators=(",", ":"),
    )


main()
