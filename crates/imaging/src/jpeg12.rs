//! A sequential (baseline and extended) Huffman JPEG decoder for 12-bit
//! samples.
//!
//! jpeg-decoder, which dicom-pixeldata uses, refuses 12-bit precision, yet
//! JPEG Extended (1.2.840.10008.1.2.4.51) with 12-bit samples is what older
//! CT and MR archives hold. Debian has no 12-bit JPEG library to bind, so
//! this is a small decoder of ITU-T T.81 sequential DCT: Huffman tables,
//! 8- or 16-bit quantisation tables, restart intervals, one interleaved scan
//! of components without subsampling. Anything else is an error naming it.
//! The inverse DCT is the separable floating-point one of T.81 A.3.3; other
//! decoders (libjpeg's integer IDCT) may differ by a grey level.

/// A decoded image: `components` samples per pixel, interleaved, as u16.
pub(crate) struct Image {
    pub width: usize,
    pub height: usize,
    pub components: usize,
    pub precision: u8,
    pub samples: Vec<u16>,
}

/// The sample precision of a JPEG stream's frame header, if it has one.
pub(crate) fn precision(data: &[u8]) -> Option<u8> {
    let mut i = 2;
    while i + 4 < data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            return data.get(i + 4).copied();
        }
        i += 2 + len;
    }
    None
}

/// A canonical Huffman table (T.81 F.2.2.3): per code length, the largest
/// code, the smallest code, and where its values start.
#[derive(Clone)]
struct Huffman {
    max_code: [i32; 17],
    min_code: [i32; 17],
    val_ptr: [usize; 17],
    values: Vec<u8>,
}

impl Default for Huffman {
    fn default() -> Self {
        Huffman {
            max_code: [-1; 17],
            min_code: [0; 17],
            val_ptr: [0; 17],
            values: Vec::new(),
        }
    }
}

impl Huffman {
    fn new(bits: &[u8; 16], values: &[u8]) -> Huffman {
        let mut h = Huffman {
            values: values.to_vec(),
            ..Huffman::default()
        };
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16 {
            let n = bits[len - 1] as usize;
            if n > 0 {
                h.val_ptr[len] = k;
                h.min_code[len] = code;
                code += n as i32;
                k += n;
                h.max_code[len] = code - 1;
            }
            code <<= 1;
        }
        h
    }
}

struct Component {
    id: u8,
    quant: usize,
    dc: usize,
    ac: usize,
    pred: i32,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    n: u8,
}

impl<'a> Bits<'a> {
    fn bit(&mut self) -> u32 {
        if self.n == 0 {
            let mut byte = 0u8;
            if self.pos < self.data.len() {
                byte = self.data[self.pos];
                if byte == 0xFF {
                    match self.data.get(self.pos + 1) {
                        Some(0x00) => self.pos += 2,
                        // A marker: feed zeros until the caller resyncs.
                        _ => byte = 0,
                    }
                } else {
                    self.pos += 1;
                }
            }
            self.acc = byte as u32;
            self.n = 8;
        }
        self.n -= 1;
        (self.acc >> self.n) & 1
    }

    fn bits(&mut self, count: u8) -> u32 {
        (0..count).fold(0, |v, _| (v << 1) | self.bit())
    }

    fn decode(&mut self, h: &Huffman) -> Result<u8, String> {
        let mut code = 0i32;
        for len in 1..=16 {
            code = (code << 1) | self.bit() as i32;
            if code <= h.max_code[len] {
                let i = h.val_ptr[len] + (code - h.min_code[len]) as usize;
                return h
                    .values
                    .get(i)
                    .copied()
                    .ok_or_else(|| "invalid Huffman table".to_string());
            }
        }
        Err("invalid Huffman code".into())
    }

    /// Skip to after the next RSTn marker.
    fn restart(&mut self) -> Result<(), String> {
        self.n = 0;
        while self.pos + 1 < self.data.len() {
            if self.data[self.pos] == 0xFF && (0xD0..=0xD7).contains(&self.data[self.pos + 1]) {
                self.pos += 2;
                return Ok(());
            }
            self.pos += 1;
        }
        Err("missing restart marker".into())
    }
}

fn extend(v: u32, s: u8) -> i32 {
    if s == 0 {
        0
    } else if v < (1 << (s - 1)) {
        v as i32 - (1 << s) + 1
    } else {
        v as i32
    }
}

const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Decode a sequential Huffman JPEG stream, refusing more than
/// `max_samples` samples.
pub(crate) fn decode(data: &[u8], max_samples: usize) -> Result<Image, String> {
    if data.len() < 4 || data[0..2] != [0xFF, 0xD8] {
        return Err("not a JPEG stream (no SOI)".into());
    }
    let mut quant = [[0u16; 64]; 4];
    let mut dc_tables = vec![Huffman::default(); 4];
    let mut ac_tables = vec![Huffman::default(); 4];
    let mut comps: Vec<Component> = Vec::new();
    let (mut width, mut height, mut precision) = (0usize, 0usize, 0u8);
    let mut restart_interval = 0usize;
    let mut i = 2;
    loop {
        if i + 4 > data.len() {
            return Err("stream ends before the scan".into());
        }
        if data[i] != 0xFF {
            return Err(format!("expected a marker at byte {i}"));
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        let seg = data
            .get(i + 4..i + 2 + len)
            .ok_or("segment runs past the end")?;
        match marker {
            0xC0 | 0xC1 => {
                if seg.len() < 6 {
                    return Err("short frame header".into());
                }
                precision = seg[0];
                height = u16::from_be_bytes([seg[1], seg[2]]) as usize;
                width = u16::from_be_bytes([seg[3], seg[4]]) as usize;
                let n = seg[5] as usize;
                if seg.len() < 6 + 3 * n || n == 0 || n > 4 {
                    return Err("bad component list".into());
                }
                for c in 0..n {
                    let s = &seg[6 + 3 * c..9 + 3 * c];
                    if s[1] != 0x11 {
                        return Err("subsampled components are not supported".into());
                    }
                    comps.push(Component {
                        id: s[0],
                        quant: (s[2] & 3) as usize,
                        dc: 0,
                        ac: 0,
                        pred: 0,
                    });
                }
                if ![8, 12].contains(&precision) || width == 0 || height == 0 {
                    return Err(format!("{precision}-bit {width}x{height} frame"));
                }
                if width * height * n > max_samples {
                    return Err(format!(
                        "a {width}x{height}x{n} frame exceeds what the header allows"
                    ));
                }
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(format!(
                    "JPEG process with SOF marker 0x{marker:02X} is not supported"
                ));
            }
            0xDB => {
                let mut p = 0;
                while p < seg.len() {
                    let (pq, tq) = (seg[p] >> 4, (seg[p] & 3) as usize);
                    p += 1;
                    for k in 0..64 {
                        let v = if pq == 0 {
                            seg.get(p + k).map(|&v| v as u16)
                        } else {
                            seg.get(p + 2 * k..p + 2 * k + 2)
                                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                        };
                        quant[tq][ZIGZAG[k]] = v.ok_or("short quantisation table")?;
                    }
                    p += if pq == 0 { 64 } else { 128 };
                }
            }
            0xC4 => {
                let mut p = 0;
                while p + 17 <= seg.len() {
                    let (class, id) = (seg[p] >> 4, (seg[p] & 3) as usize);
                    let mut bits = [0u8; 16];
                    bits.copy_from_slice(&seg[p + 1..p + 17]);
                    let n: usize = bits.iter().map(|&b| b as usize).sum();
                    let values = seg.get(p + 17..p + 17 + n).ok_or("short Huffman table")?;
                    let table = Huffman::new(&bits, values);
                    if class == 0 {
                        dc_tables[id] = table;
                    } else {
                        ac_tables[id] = table;
                    }
                    p += 17 + n;
                }
            }
            0xDD => {
                restart_interval =
                    u16::from_be_bytes([seg[0], *seg.get(1).ok_or("short DRI")?]) as usize;
            }
            0xDA => {
                let n = *seg.first().ok_or("short scan header")? as usize;
                if n != comps.len() || seg.len() < 1 + 2 * n + 3 {
                    return Err("only one scan with every component is supported".into());
                }
                for k in 0..n {
                    let (id, tables) = (seg[1 + 2 * k], seg[2 + 2 * k]);
                    let c = comps
                        .iter_mut()
                        .find(|c| c.id == id)
                        .ok_or("scan names an unknown component")?;
                    c.dc = (tables >> 4 & 3) as usize;
                    c.ac = (tables & 3) as usize;
                }
                let body = &data[i + 2 + len..];
                return scan(
                    body,
                    &mut comps,
                    &quant,
                    &dc_tables,
                    &ac_tables,
                    width,
                    height,
                    precision,
                    restart_interval,
                );
            }
            _ => {} // APPn, COM and others carry nothing we need.
        }
        i += 2 + len;
    }
}

#[allow(clippy::too_many_arguments)]
fn scan(
    body: &[u8],
    comps: &mut [Component],
    quant: &[[u16; 64]; 4],
    dc: &[Huffman],
    ac: &[Huffman],
    width: usize,
    height: usize,
    precision: u8,
    restart_interval: usize,
) -> Result<Image, String> {
    let n = comps.len();
    let (bw, bh) = (width.div_ceil(8), height.div_ceil(8));
    let mut samples = vec![0u16; width * height * n];
    let mut bits = Bits {
        data: body,
        pos: 0,
        acc: 0,
        n: 0,
    };
    let cos = idct_table();
    let shift = (1i32 << (precision - 1)) as f32;
    let max = ((1u32 << precision) - 1) as f32;
    let mut coef = [0f32; 64];
    for mcu in 0..bw * bh {
        if restart_interval > 0 && mcu > 0 && mcu % restart_interval == 0 {
            bits.restart()?;
            comps.iter_mut().for_each(|c| c.pred = 0);
        }
        let (bx, by) = (mcu % bw, mcu / bw);
        for (ci, c) in comps.iter_mut().enumerate() {
            coef.fill(0.0);
            let s = bits.decode(&dc[c.dc])?;
            if s > 16 {
                return Err("bad DC category".into());
            }
            let diff = extend(bits.bits(s), s);
            c.pred += diff;
            let q = &quant[c.quant];
            coef[0] = (c.pred * q[0] as i32) as f32;
            let mut k = 1;
            while k < 64 {
                let rs = bits.decode(&ac[c.ac])?;
                let (r, s) = ((rs >> 4) as usize, rs & 15);
                if s == 0 {
                    if r == 15 {
                        k += 16;
                        continue;
                    }
                    break;
                }
                k += r;
                if k > 63 {
                    return Err("AC coefficient index past 63".into());
                }
                let z = ZIGZAG[k];
                coef[z] = (extend(bits.bits(s), s) * q[z] as i32) as f32;
                k += 1;
            }
            let block = idct(&coef, &cos);
            for y in 0..8 {
                let py = by * 8 + y;
                if py >= height {
                    break;
                }
                for x in 0..8 {
                    let px = bx * 8 + x;
                    if px >= width {
                        break;
                    }
                    let v = (block[y * 8 + x] + shift).round().clamp(0.0, max);
                    samples[(py * width + px) * n + ci] = v as u16;
                }
            }
        }
    }
    Ok(Image {
        width,
        height,
        components: n,
        precision,
        samples,
    })
}

fn idct_table() -> [[f32; 8]; 8] {
    let mut t = [[0f32; 8]; 8];
    for (x, row) in t.iter_mut().enumerate() {
        for (u, v) in row.iter_mut().enumerate() {
            let c = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            *v = (c * ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos() / 2.0)
                as f32;
        }
    }
    t
}

/// Separable 8x8 inverse DCT (T.81 A.3.3).
fn idct(coef: &[f32; 64], t: &[[f32; 8]; 8]) -> [f32; 64] {
    let mut tmp = [0f32; 64];
    for v in 0..8 {
        for x in 0..8 {
            tmp[v * 8 + x] = (0..8).map(|u| t[x][u] * coef[v * 8 + u]).sum();
        }
    }
    let mut out = [0f32; 64];
    for y in 0..8 {
        for x in 0..8 {
            out[y * 8 + x] = (0..8).map(|v| t[y][v] * tmp[v * 8 + x]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_only_block_is_flat() {
        let t = idct_table();
        let mut coef = [0f32; 64];
        coef[0] = 80.0;
        let out = idct(&coef, &t);
        assert!(out.iter().all(|v| (v - 10.0).abs() < 1e-4), "{out:?}");
    }

    #[test]
    fn extend_follows_t81() {
        assert_eq!(extend(0, 1), -1);
        assert_eq!(extend(1, 1), 1);
        assert_eq!(extend(2, 3), -5);
        assert_eq!(extend(6, 3), 6);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&[0xFF, 0xD8, 0xFF, 0xC1, 0x00], 100).is_err());
        assert!(decode(b"not a jpeg", 100).is_err());
    }
}
