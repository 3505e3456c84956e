//! The server of `descent app`, on axum and tokio.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use descent::data::folder::{PictureError, Resize, decode_bytes};
use descent::device;
use descent::inference::{SavedClassifier, SavedModel, load_saved};
use serde::Serialize;
use serde_json::json;

use super::{AppArgs, PAGE};
use crate::Failure;

/// What every request shares: the model (forward passes take turns) and what `/info` says.
struct App {
    classifier: Mutex<SavedClassifier>,
    /// The model's side and how it makes pictures square: read without taking the lock.
    side: usize,
    resize: Resize,
    device: burn::prelude::Device,
    info: serde_json::Value,
    max_upload_bytes: usize,
}

/// A refusal: a status and one sentence, sent as `{"error": "..."}`.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// One class and its probability.
#[derive(Serialize)]
struct Scored {
    class: String,
    index: usize,
    probability: f32,
}

/// The answer to `POST /predict`.
#[derive(Serialize)]
struct Prediction {
    predictions: Vec<Scored>,
    top: String,
    width: u32,
    height: u32,
}

pub fn run(args: &AppArgs) -> Result<(), Failure> {
    let selected = device::select(&args.device).map_err(Failure::input)?;
    let (config, saved) =
        load_saved(&args.model, &selected.device).map_err(|e| Failure::input(format!("--model: {e}")))?;
    let SavedModel::Classifier(classifier) = saved else {
        return Err(Failure::input(format!(
            "--model {}: this run trained the linear model; descent app serves image classifiers (descent cnn)",
            args.model.display()
        )));
    };
    // Bounded: a summary is a few hundred bytes, and a link to an endless file reads as none.
    let summary_path = args.model.join(descent::report::files::SUMMARY_FILE);
    let accuracy = descent::limits::read_text(&summary_path, descent::limits::MAX_CONFIG_BYTES)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|summary| summary.get("accuracy").and_then(serde_json::Value::as_f64));
    let shape = classifier.shape();
    let run_name = std::path::absolute(&args.model)
        .ok()
        .and_then(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| args.model.display().to_string());
    let max_upload_bytes = usize::try_from(args.max_upload_bytes).unwrap_or(usize::MAX);
    let info = json!({
        "model": classifier.kind(),
        "run": run_name,
        "classes": classifier.class_names(),
        "accuracy": accuracy,
        "side": shape.side,
        "channels": shape.channels,
        "max_upload_bytes": max_upload_bytes,
        "seed": config.seed,
    });
    let resize = classifier.resize();
    let app = Arc::new(App {
        classifier: Mutex::new(classifier),
        side: shape.side,
        resize,
        device: selected.device,
        info,
        max_upload_bytes,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(format!("cannot start the server's runtime: {e}")))?;
    runtime.block_on(serve(app, args))
}

async fn serve(app: Arc<App>, args: &AppArgs) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| Failure::input(format!("--addr {}: cannot listen there ({e})", args.addr)))?;
    let address = listener.local_addr().unwrap_or(args.addr);
    let routes = Router::new()
        .route("/", get(page))
        .route("/info", get(info))
        .route("/health", get(health))
        .route("/predict", post(predict))
        // The limit is checked in `predict`, which answers with a sentence in JSON.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(app.clone());
    let classes = app.info["classes"].as_array().map_or(0, Vec::len);
    say!(
        false,
        "descent app: the {} of {} ({classes} classes) at http://{address}/",
        app.info["model"].as_str().unwrap_or("model"),
        args.model.display()
    );
    say!(
        false,
        "  POST /predict (a picture, raw or multipart) answers JSON; GET /health; Ctrl-C stops the server"
    );
    let interrupter = crate::interrupt::install();
    let stopped = async move {
        while !interrupter.should_stop() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    axum::serve(listener, routes)
        .with_graceful_shutdown(stopped)
        .await
        .map_err(|e| Failure::internal(format!("the server stopped: {e}")))
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE)
}

async fn info(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(app.info.clone())
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Room for a multipart envelope around a picture of the largest size.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

async fn predict(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Prediction>, Refusal> {
    let limit = app.max_upload_bytes;
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().starts_with("multipart/form-data"));
    let envelope = if multipart { MULTIPART_OVERHEAD } else { 0 };
    let too_large = || {
        Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit + envelope) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit + envelope).await.map_err(|_| too_large())?;
    let picture = if multipart { first_file(&headers, bytes).await? } else { bytes };
    if picture.len() > limit {
        return Err(too_large());
    }
    if picture.is_empty() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "the request holds no picture: send its bytes, or a multipart form with a file".into(),
        ));
    }
    let worker = app.clone();
    tokio::task::spawn_blocking(move || classify(&worker, &picture))
        .await
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("the prediction failed: {e}")))?
        .map(Json)
}

/// The first field of a multipart form that holds bytes (a file, or any field).
async fn first_file(headers: &HeaderMap, bytes: Bytes) -> Result<Bytes, Refusal> {
    let mut request = Request::new(Body::from(bytes));
    *request.headers_mut() = headers.clone();
    let malformed = |e: &dyn std::fmt::Display| {
        Refusal(StatusCode::BAD_REQUEST, format!("the multipart form cannot be read ({e})"))
    };
    let mut form = Multipart::from_request(request, &()).await.map_err(|e| malformed(&e))?;
    while let Some(field) = form.next_field().await.map_err(|e| malformed(&e))? {
        let data = field.bytes().await.map_err(|e| malformed(&e))?;
        if !data.is_empty() {
            return Ok(data);
        }
    }
    Err(Refusal(StatusCode::BAD_REQUEST, "the multipart form holds no file".into()))
}

/// Decode the picture and run the model on it.
fn classify(app: &App, bytes: &[u8]) -> Result<Prediction, Refusal> {
    let decoded = decode_bytes(bytes, app.side, app.resize).map_err(|error| match error {
        PictureError::Empty => Refusal(StatusCode::BAD_REQUEST, error.to_string()),
        PictureError::NotAPicture(_) => Refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, error.to_string()),
        PictureError::TooLarge { .. } => Refusal(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
        PictureError::BeyondMemory { .. } => Refusal(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()),
    })?;
    let classifier = app.classifier.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let values = classifier.input(&decoded);
    let rows = classifier.probabilities(values, 1, &app.device).map_err(|e| {
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("the model failed on the device: {e}"))
    })?;
    let names = classifier.class_names();
    let mut predictions: Vec<Scored> = rows[0]
        .iter()
        .enumerate()
        .map(|(index, &probability)| Scored { class: names[index].clone(), index, probability })
        .collect();
    predictions.sort_by(|a, b| b.probability.total_cmp(&a.probability).then(a.index.cmp(&b.index)));
    let top = predictions[0].class.clone();
    Ok(Prediction { predictions, top, width: decoded.width, height: decoded.height })
}
