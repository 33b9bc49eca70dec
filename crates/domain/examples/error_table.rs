//! Prints the error-code table that `docs/errors.md` embeds.
fn main() {
    print!("{}", gsl_domain::ErrorCode::markdown_table());
}
