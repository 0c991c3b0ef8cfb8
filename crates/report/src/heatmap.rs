//! The heatmap as a picture the PACS viewer shows: an 8-bit RGB Secondary
//! Capture in the same study (its own series), the display image with the
//! class activation map overlaid and a burned-in label naming the finding
//! and saying it is not for diagnosis.

use dicom_core::value::PrimitiveValue;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::content::{put, sequence};
use crate::sr::{Device, ImageRef};
use crate::{
    copy_patient_and_study, file_meta, put_equipment, put_instance, text, uid_from, ReportError,
};

pub const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";

/// A heatmap picture to write.
#[derive(Debug, Clone)]
pub struct HeatmapCapture<'a> {
    pub source: &'a InMemDicomObject,
    pub study_uid: String,
    /// The image the heatmap was computed on.
    pub image: ImageRef,
    /// The finding shown (or e.g. "all flagged findings").
    pub finding: String,
    /// How the map was made ("class activation map", "occlusion
    /// sensitivity (8 x 8 grid)").
    pub method: String,
    pub model_name: String,
    pub model_version: String,
    pub device: Device,
    /// Interleaved RGB, `columns x rows`, the overlay already drawn.
    pub columns: usize,
    pub rows: usize,
    pub rgb: Vec<u8>,
    pub content_date: String,
    pub content_time: String,
}

impl HeatmapCapture<'_> {
    /// The burned-in label.
    pub fn label(&self) -> String {
        format!("AI heatmap - {} - not for diagnosis", self.finding)
    }

    pub fn sop_instance_uid(&self) -> String {
        uid_from(&[
            "heatmap",
            &self.study_uid,
            &self.image.sop_instance_uid,
            &self.finding,
            &self.model_name,
            &self.model_version,
        ])
    }

    pub fn series_uid(&self) -> String {
        uid_from(&["heatmap-series", &self.study_uid, &self.device.uid])
    }

    pub fn build(
        &self,
        instance_number: u32,
    ) -> Result<FileDicomObject<InMemDicomObject>, ReportError> {
        if self.columns == 0 || self.rows == 0 || self.rgb.len() != 3 * self.columns * self.rows {
            return Err(ReportError::Image(format!(
                "{} bytes for {}x{} RGB",
                self.rgb.len(),
                self.columns,
                self.rows
            )));
        }
        if self.columns > u16::MAX as usize || self.rows > u16::MAX as usize {
            return Err(ReportError::Image("larger than 65535 pixels".into()));
        }
        let mut rgb = self.rgb.clone();
        let size = (self.rows.min(self.columns) as f32 / 28.0).clamp(12.0, 48.0);
        text::burn(
            &mut rgb,
            self.columns,
            &self.label(),
            (size / 2.0) as usize,
            (size / 2.0) as usize,
            size,
            [255, 255, 0],
        );
        let sop_uid = self.sop_instance_uid();
        let mut o = InMemDicomObject::new_empty();
        copy_patient_and_study(self.source, &mut o);
        put_instance(
            &mut o,
            SECONDARY_CAPTURE,
            &sop_uid,
            instance_number,
            (&self.content_date, &self.content_time),
        );
        // General Series.
        put(&mut o, tags::MODALITY, VR::CS, "OT");
        put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, self.series_uid());
        put(&mut o, tags::SERIES_NUMBER, VR::IS, "9902");
        put(
            &mut o,
            tags::SERIES_DESCRIPTION,
            VR::LO,
            "triaged AI heatmaps - not for diagnosis",
        );
        // Laterality is needed unless the body part says it is unpaired.
        match self.source.get(tags::BODY_PART_EXAMINED) {
            Some(e) => {
                o.put(e.clone());
            }
            None => put(&mut o, tags::LATERALITY, VR::CS, ""),
        }
        // General Equipment, SC Equipment.
        put_equipment(&mut o, &self.device);
        put(&mut o, tags::CONVERSION_TYPE, VR::CS, "WSD");
        // General Image.
        put(&mut o, tags::PATIENT_ORIENTATION, VR::CS, "");
        o.put(dicom_core::DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(vec!["DERIVED".to_string(), "SECONDARY".to_string()].into()),
        ));
        put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
        put(
            &mut o,
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            format!(
                "{} {}: {} for {}",
                self.model_name, self.model_version, self.method, self.finding
            ),
        );
        let mut src = InMemDicomObject::new_empty();
        put(
            &mut src,
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            self.image.sop_class_uid.as_str(),
        );
        put(
            &mut src,
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            self.image.sop_instance_uid.as_str(),
        );
        sequence(&mut o, tags::SOURCE_IMAGE_SEQUENCE, vec![src]);
        // Image Pixel.
        put(&mut o, tags::SAMPLES_PER_PIXEL, VR::US, 3u16);
        put(&mut o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB");
        put(&mut o, tags::PLANAR_CONFIGURATION, VR::US, 0u16);
        put(&mut o, tags::ROWS, VR::US, self.rows as u16);
        put(&mut o, tags::COLUMNS, VR::US, self.columns as u16);
        put(&mut o, tags::BITS_ALLOCATED, VR::US, 8u16);
        put(&mut o, tags::BITS_STORED, VR::US, 8u16);
        put(&mut o, tags::HIGH_BIT, VR::US, 7u16);
        put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, 0u16);
        put(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
        if rgb.len() % 2 == 1 {
            rgb.push(0);
        }
        put(
            &mut o,
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(rgb.into()),
        );
        Ok(o.with_exact_meta(file_meta(SECONDARY_CAPTURE, &sop_uid)?))
    }
}
