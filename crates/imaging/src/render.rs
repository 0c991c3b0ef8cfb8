//! Images for people: an 8-bit display rendering of a frame, a heatmap
//! overlaid on it in colour, and PNG encoding. Reports (heatmap Secondary
//! Capture) and the worklist page use these.

use crate::frames::{Frames, Photometric};
use crate::ImagingError;

/// An 8-bit image, 1 (grey) or 3 (RGB) channels, interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image8 {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl Frames {
    /// A frame as a radiologist would first see it: monochrome through its
    /// VOI (white = 255, MONOCHROME1 inverted), colour scaled from its bit
    /// depth.
    pub fn display(&self, frame: usize) -> Result<Image8, ImagingError> {
        let (width, height) = (self.columns, self.rows);
        match self.photometric {
            Photometric::Monochrome1 | Photometric::Monochrome2 => {
                let data = self.map_unit(frame, self.voi_of(frame), |u| {
                    ((u as f32).clamp(0.0, 1.0) * 255.0).round() as u8
                })?;
                Ok(Image8 {
                    width,
                    height,
                    channels: 1,
                    data,
                })
            }
            Photometric::Rgb => {
                let max = ((1u64 << self.bits_stored) - 1) as f32;
                let data = self
                    .frame(frame)?
                    .iter()
                    .map(|&v| ((v as f32 / max).clamp(0.0, 1.0) * 255.0).round() as u8)
                    .collect();
                Ok(Image8 {
                    width,
                    height,
                    channels: 3,
                    data,
                })
            }
            Photometric::Other(_) => Err(ImagingError::UnsupportedPhotometric {
                sop: self.sop_instance_uid.clone(),
                photometric: format!("{:?}", self.photometric),
                what: "display rendering",
            }),
        }
    }
}

/// The "jet"-like colour map used for heatmaps: blue, cyan, yellow, red.
fn colour(v: f32) -> [f32; 3] {
    let v = v.clamp(0.0, 1.0);
    let r = (1.5 - (4.0 * v - 3.0).abs()).clamp(0.0, 1.0);
    let g = (1.5 - (4.0 * v - 2.0).abs()).clamp(0.0, 1.0);
    let b = (1.5 - (4.0 * v - 1.0).abs()).clamp(0.0, 1.0);
    [r, g, b]
}

/// Overlay a heatmap (`heat_h` x `heat_w`, values in [0, 1], covering the
/// whole image) on a display image. Each pixel blends towards the colour
/// of its heat with weight `alpha * heat`, so cold areas keep the anatomy.
pub fn overlay(
    base: &Image8,
    heat: &[f32],
    heat_h: usize,
    heat_w: usize,
    alpha: f32,
) -> Result<Image8, ImagingError> {
    if heat.len() != heat_h * heat_w || heat_h == 0 || heat_w == 0 {
        return Err(ImagingError::Spec(format!(
            "heatmap has {} values for {heat_h}x{heat_w}",
            heat.len()
        )));
    }
    if heat.iter().any(|v| !v.is_finite()) {
        return Err(ImagingError::Spec(
            "heatmap contains NaN or infinity".into(),
        ));
    }
    let up = bilinear(heat, heat_h, heat_w, base.height, base.width);
    let mut data = Vec::with_capacity(base.width * base.height * 3);
    for (i, &h) in up.iter().enumerate() {
        let grey = if base.channels == 1 {
            [base.data[i] as f32; 3]
        } else {
            let p = &base.data[i * 3..i * 3 + 3];
            [p[0] as f32, p[1] as f32, p[2] as f32]
        };
        let c = colour(h);
        let w = (alpha * h.clamp(0.0, 1.0)).clamp(0.0, 1.0);
        for k in 0..3 {
            data.push((grey[k] * (1.0 - w) + c[k] * 255.0 * w).round() as u8);
        }
    }
    Ok(Image8 {
        width: base.width,
        height: base.height,
        channels: 3,
        data,
    })
}

/// Bilinear upsampling with pixel centres aligned (align_corners = false),
/// so a coarse class-activation map becomes a smooth overlay.
fn bilinear(src: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let coord = |o: usize, n_in: usize, n_out: usize| {
        let x = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).clamp(0.0, (n_in - 1) as f32);
        let i = x.floor() as usize;
        (i, (i + 1).min(n_in - 1), x - i as f32)
    };
    let xs: Vec<_> = (0..out_w).map(|o| coord(o, w, out_w)).collect();
    let mut out = Vec::with_capacity(out_h * out_w);
    for oy in 0..out_h {
        let (y0, y1, fy) = coord(oy, h, out_h);
        for &(x0, x1, fx) in &xs {
            let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
            let bottom = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

impl Image8 {
    /// The `height` x `width` region at (`top`, `left`) in grey (colour
    /// channels averaged), its longer side at most `max_side`, shrunk by
    /// area averaging straight from this image's samples: what the viewer
    /// and the heatmap captures show.
    pub fn grey_fitted(
        &self,
        top: usize,
        left: usize,
        height: usize,
        width: usize,
        max_side: usize,
    ) -> Image8 {
        assert!(
            top + height <= self.height && left + width <= self.width,
            "region inside the image"
        );
        let c = self.channels;
        let grey = |y: usize, x: usize| {
            let k = c * ((top + y) * self.width + left + x);
            self.data[k..k + c].iter().map(|&v| v as f32).sum::<f32>() / c as f32
        };
        let side = height.max(width);
        let (h, w) = if side > max_side {
            (
                (height * max_side / side).max(1),
                (width * max_side / side).max(1),
            )
        } else {
            (height, width)
        };
        let byte = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        let data = if (h, w) == (height, width) {
            (0..h)
                .flat_map(|y| (0..w).map(move |x| (y, x)))
                .map(|(y, x)| byte(grey(y, x)))
                .collect()
        } else {
            crate::resize::area_resize_with(height, width, h, w, |y, x| grey(y, x) as f64)
                .into_iter()
                .map(byte)
                .collect()
        };
        Image8 {
            width: w,
            height: h,
            channels: 1,
            data,
        }
    }

    /// Encode as PNG (8-bit grey or RGB).
    pub fn to_png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        enc.set_color(if self.channels == 1 {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        });
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().expect("PNG header to memory");
        writer
            .write_image_data(&self.data)
            .expect("PNG data to memory");
        writer.finish().expect("PNG end to memory");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_colours_hot_areas_and_keeps_cold_ones() {
        let base = Image8 {
            width: 4,
            height: 4,
            channels: 1,
            data: vec![100; 16],
        };
        let heat = [0.0, 1.0, 0.0, 1.0];
        let out = overlay(&base, &heat, 2, 2, 0.5).unwrap();
        assert_eq!((out.width, out.height, out.channels), (4, 4, 3));
        assert_eq!(&out.data[0..3], &[100, 100, 100], "cold pixel unchanged");
        let hot = &out.data[3 * 3..3 * 3 + 3];
        assert!(
            hot[0] > hot[1] + 40 && hot[0] > hot[2] + 40,
            "hot pixel is red: {hot:?}"
        );
        assert!(overlay(&base, &[0.5; 3], 2, 2, 0.5).is_err());
        assert!(overlay(&base, &[f32::NAN; 4], 2, 2, 0.5).is_err());
    }

    #[test]
    fn a_region_is_fitted_from_its_own_pixels_in_grey() {
        // 4 x 6 grey, sample = 10 * row + column; the 2 x 4 region at
        // (1, 2) fitted within 2 pixels: two 2 x 2 block means.
        let grey = Image8 {
            width: 6,
            height: 4,
            channels: 1,
            data: (0..4)
                .flat_map(|y| (0..6).map(move |x| 10 * y + x))
                .collect(),
        };
        let small = grey.grey_fitted(1, 2, 2, 4, 2);
        assert_eq!((small.height, small.width, small.channels), (1, 2, 1));
        // (12 + 13 + 22 + 23) / 4 = 17.5 and (14 + 15 + 24 + 25) / 4 = 19.5
        assert_eq!(small.data, vec![18, 20]);
        // Small enough already: the region itself.
        assert_eq!(grey.grey_fitted(2, 4, 2, 2, 8).data, vec![24, 25, 34, 35]);
        // Colour: the channels' mean, then fitted.
        let rgb = Image8 {
            width: 2,
            height: 1,
            channels: 3,
            data: vec![0, 30, 60, 90, 120, 150],
        };
        assert_eq!(rgb.grey_fitted(0, 1, 1, 1, 8).data, vec![120]);
        assert_eq!(rgb.grey_fitted(0, 0, 1, 2, 1).data, vec![75]);
    }

    #[test]
    fn bilinear_interpolates_between_centres() {
        let up = bilinear(&[0.0, 1.0], 1, 2, 1, 4);
        assert_eq!(up, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn png_round_trips() {
        let img = Image8 {
            width: 3,
            height: 2,
            channels: 3,
            data: (0..18).map(|v| v * 10).collect(),
        };
        let bytes = img.to_png();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&buf[..info.buffer_size()], &img.data[..]);
    }
}
