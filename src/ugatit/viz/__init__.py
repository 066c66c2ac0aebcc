"""Pictures and pages: heatmaps, overlays and grids (`images`), SVG charts (`plots`), HTML (`html`)."""
