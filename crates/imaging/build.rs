//! Link CharLS (JPEG-LS) from the system: Debian's libcharls-dev, which
//! scripts/setup.sh installs. No C or C++ is built here.
fn main() {
    if let Err(e) = pkg_config::Config::new()
        .atleast_version("2.1")
        .probe("charls")
    {
        panic!(
            "CharLS not found ({e}). Install Debian's libcharls-dev \
             (scripts/setup.sh does): JPEG-LS decoding links the system library."
        );
    }
}
