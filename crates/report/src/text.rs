//! Burning a line of text into an RGB image (DejaVu Sans, rasterised with
//! ab_glyph), for labels that must travel with the pixels.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};

/// Draw `text` at (x, y) (top-left of the line), `size` pixels tall, in
/// `colour` over a darkened box, into an interleaved RGB image `width`
/// pixels wide.
pub(crate) fn burn(
    rgb: &mut [u8],
    width: usize,
    text: &str,
    x: usize,
    y: usize,
    size: f32,
    colour: [u8; 3],
) {
    let Ok(font) = FontRef::try_from_slice(dejavu::sans::regular()) else {
        return;
    };
    let scaled = font.as_scaled(PxScale::from(size));
    let rows = rgb.len() / 3 / width.max(1);
    // Lay out the glyphs.
    let mut caret = x as f32;
    let baseline = y as f32 + scaled.ascent();
    let mut glyphs = Vec::new();
    let mut last = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(prev) = last {
            caret += scaled.kern(prev, id);
        }
        glyphs.push(id.with_scale_and_position(PxScale::from(size), point(caret, baseline)));
        caret += scaled.h_advance(id);
        last = Some(id);
    }
    // A dark box behind the text keeps it legible on any image.
    let (x1, y1) = (
        (caret.ceil() as usize + 4).min(width),
        (y + (scaled.height().ceil() as usize) + 4).min(rows),
    );
    for row in y.saturating_sub(2)..y1 {
        for col in x.saturating_sub(4)..x1 {
            let k = 3 * (row * width + col);
            for ch in 0..3 {
                rgb[k + ch] /= 4;
            }
        }
    }
    for g in glyphs {
        if let Some(outline) = font.outline_glyph(g) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let px = b.min.x as i64 + gx as i64;
                let py = b.min.y as i64 + gy as i64;
                if px < 0 || py < 0 || px as usize >= width || py as usize >= rows {
                    return;
                }
                let k = 3 * (py as usize * width + px as usize);
                for ch in 0..3 {
                    let v = rgb[k + ch] as f32 * (1.0 - coverage) + colour[ch] as f32 * coverage;
                    rgb[k + ch] = v.round() as u8;
                }
            });
        }
    }
}
