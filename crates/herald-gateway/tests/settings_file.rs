//! The example settings file in deploy/ must stay loadable.

#[test]
fn the_example_settings_file_loads() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/herald.example.toml"
    );
    let settings = herald_gateway::Settings::load(Some(std::path::Path::new(path))).unwrap();
    assert_eq!(
        settings.backend,
        herald_gateway::settings::BackendKind::Redis
    );
    assert_eq!(settings.auth.allowed_origins, ["https://app.example.com"]);
}
