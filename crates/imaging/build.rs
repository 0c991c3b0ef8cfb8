//! Link OpenJPEG (JPEG 2000) from the system: Debian's libopenjp2-7-dev,
//! which scripts/setup.sh installs. src/jpeg2k.rs declares the parts of
//! OpenJPEG's API it calls and copies the layout of `opj_image_t` and
//! `opj_image_comp_t`, which hold from 2.1 through every 2.x release; 2.5
//! is the first that decodes High-Throughput JPEG 2000. So the build
//! refuses any other version rather than read a struct laid out otherwise.
//! (CharLS, for JPEG-LS, is compiled by the charls-sys crate.)
fn main() {
    if let Err(e) = pkg_config::Config::new()
        .range_version("2.5".."3")
        .probe("libopenjp2")
    {
        panic!(
            "OpenJPEG 2.5 or a later 2.x not found ({e}). Install Debian's \
             libopenjp2-7-dev (scripts/setup.sh does): JPEG 2000 decoding \
             links the system library, whose struct layouts src/jpeg2k.rs \
             copies for 2.x."
        );
    }
}
