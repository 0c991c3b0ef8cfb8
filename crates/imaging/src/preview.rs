//! A stored instance as a picture for a screen, from its file: what the
//! worklist shows (the web crate asks for it instead of parsing DICOM).

use std::path::Path;

use crate::{Frames, ImagingError};

/// The first frame of the instance in `file`, windowed as
/// [`Frames::display`] does, a greyscale image fitted within `max_side`
/// pixels, as PNG.
pub fn preview_png(file: &Path, max_side: usize) -> Result<Vec<u8>, ImagingError> {
    let obj = dicom_object::open_file(file).map_err(|e| ImagingError::Read {
        path: file.display().to_string(),
        detail: e.to_string(),
    })?;
    let mut img = Frames::decode(&obj)?.display(0)?;
    if img.channels == 1 {
        img = img.grey_fitted(0, 0, img.height, img.width, max_side);
    }
    Ok(img.to_png())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let e = preview_png(Path::new("/nonexistent/x.dcm"), 64).unwrap_err();
        assert!(matches!(e, ImagingError::Read { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/x.dcm"), "{e}");
    }
}
