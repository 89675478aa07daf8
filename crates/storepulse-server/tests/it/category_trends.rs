//! Category trends over HTTP: seed 1's CSV imported and ranked, and trends computed from events.

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;
use storepulse_model::Timestamp;

use crate::support::{TestApp, post};

const SAMPLE: &[u8] = include_bytes!("../../../../data/category_trends_example.csv");

#[tokio::test]
async fn seed_ones_csv_is_imported_ranked_and_kept() {
    let test = TestApp::new();
    let request = post("/api/v1/category-trends/import")
        .header("content-type", "text/csv")
        .body(Body::from(SAMPLE))
        .unwrap();
    let response = test.send(request).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    assert_eq!(response.json()["imported"], 380);

    let ranking =
        test.get("/api/v1/category-trends?source=imported&country=US&limit=5").await.json();
    let gainers = ranking["gainers"].as_array().unwrap();
    assert_eq!(gainers.len(), 5);
    let scores: Vec<f64> = gainers.iter().map(|row| row["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|pair| pair[0] >= pair[1]), "{scores:?}");
    for row in gainers {
        assert_eq!(row["country"], "US");
        let expected = 0.1 * row["revenue_daily_change"].as_f64().unwrap()
            + 0.9 * row["revenue_weekly_change"].as_f64().unwrap();
        assert!((row["score"].as_f64().unwrap() - expected).abs() < 1e-9);
        assert!(row["revenue_daily_change"].as_f64().unwrap().abs() <= 3.0);
    }
    let losers = ranking["losers"].as_array().unwrap();
    assert!(losers.iter().all(|row| row["score"].as_f64().unwrap() < 0.0));

    let ticker = test.get("/api/v1/category-trends/ticker?source=imported").await.json();
    assert_eq!(ticker["items"].as_array().unwrap().len(), 10);
    // The ticker spans every country and level: filters it would ignore are refused.
    for parameter in ["country=US", "level=2", "limit=3"] {
        let query = format!("/api/v1/category-trends/ticker?source=imported&{parameter}");
        let response = test.get(&query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        let name = parameter.split('=').next().unwrap();
        assert_eq!(response.json()["error"]["details"]["parameter"], name, "{query}");
    }
    let all = test.get("/api/v1/category-trends/rows?source=imported").await.json();
    assert_eq!(all.as_array().unwrap().len(), 380);

    let bad = post("/api/v1/category-trends/import")
        .body(Body::from("event_date,campaign_country\n2025-01-01,US\n"))
        .unwrap();
    let response = test.send(bad).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.json()["error"]["details"]["column"], "product_category_level_1");

    let test = test.restart(|_| {});
    let all = test.get("/api/v1/category-trends/rows?source=imported").await.json();
    assert_eq!(all.as_array().unwrap().len(), 380, "the import survives a restart");
    assert_eq!(
        test.get("/api/v1/category-trends?source=elsewhere").await.status,
        StatusCode::BAD_REQUEST
    );
}

/// Seed 1's `category=all` (its default, which its page's links send) is no filter; it was
/// read as a category named "all" and matched nothing.
#[tokio::test]
async fn seed_ones_category_all_is_every_category() {
    let test = TestApp::new();
    let request = post("/api/v1/category-trends/import").body(Body::from(SAMPLE)).unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::OK);
    for all in ["all", "ALL", "All"] {
        let rows = test
            .get(&format!("/api/v1/category-trends/rows?source=imported&category={all}"))
            .await
            .json();
        assert_eq!(rows.as_array().unwrap().len(), 380, "{all}");
        let query = format!("/api/v1/category-trends?source=imported&category={all}&country=US");
        let ranking = test.get(&query).await.json();
        let unfiltered =
            test.get("/api/v1/category-trends?source=imported&country=US").await.json();
        assert_eq!(ranking["gainers"], unfiltered["gainers"], "{all}");
        assert!(!ranking["gainers"].as_array().unwrap().is_empty());
        let query = format!("/api/v1/category-trends/ticker?source=imported&category={all}");
        assert_eq!(test.get(&query).await.json()["items"].as_array().unwrap().len(), 10);
    }
}

/// Seed 1's JSON endpoint `GET /api/trends` was a 404: it lists every row under seed 1's
/// column names, by the size of the weekly change, the imported rows while there are any.
#[tokio::test]
async fn seed_ones_api_trends_lists_the_rows_in_its_shape() {
    let test = TestApp::new();
    let before = test.get("/api/trends").await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.json(), json!([]), "no events and no import: no rows");

    let request = post("/api/v1/category-trends/import").body(Body::from(SAMPLE)).unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::OK);
    let rows = test.get("/api/trends").await.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 380);
    let mut keys: Vec<&str> = rows[0].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "campaign_country",
            "commission_daily_change",
            "commission_monthly_change",
            "commission_weekly_change",
            "event_date",
            "product_category_level_1",
            "product_category_level_2",
            "product_category_level_3",
            "revenue_daily_change",
            "revenue_monthly_change",
            "revenue_weekly_change",
        ]
    );
    let weekly: Vec<f64> =
        rows.iter().map(|row| row["revenue_weekly_change"].as_f64().unwrap().abs()).collect();
    assert!(weekly.windows(2).all(|pair| pair[0] >= pair[1]), "sorted by |weekly| descending");
    assert!((weekly[0] - 0.8311).abs() < 1e-9, "seed 1's largest |weekly| comes first");
    assert_eq!(rows[0]["event_date"], "2025-02-09");
    let countries: std::collections::BTreeSet<&str> =
        rows.iter().map(|row| row["campaign_country"].as_str().unwrap()).collect();
    assert_eq!(countries.into_iter().collect::<Vec<_>>(), ["AUSTRALIA", "UK", "US"]);
}

#[tokio::test]
async fn trends_are_computed_from_purchases() {
    let test = TestApp::new();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64;
    let sale = |days_ago: i64, price: &str, n: i64| {
        json!({"type": "purchase", "timestamp": Timestamp(now - days_ago * 86_400_000 - 60_000).to_rfc3339(),
               "country": "US", "order": {"id": format!("o{n}")},
               "items": [{"id": "kite", "category": "Toys > Outdoor", "price": price}]})
    };
    let events = json!([sale(0, "30.00", 1), sale(8, "10.00", 2)]);
    let response = test.post_json("/api/v1/events", &events.to_string()).await;
    assert_eq!(response.status, StatusCode::OK);
    let ranking = test.get("/api/v1/category-trends?level=1").await.json();
    assert_eq!(ranking["source"], "computed");
    assert_eq!(ranking["gainers"][0]["category_level_1"], "Toys");
    assert_eq!(ranking["gainers"][0]["revenue_weekly_change"], 2.0);
    assert_eq!(ranking["gainers"][0]["revenue_week"], 30.0);
    // Nothing imported: seed 1's /api/trends lists the computed rows, in its shape.
    let rows = test.get("/api/trends").await.json();
    let toys = rows.as_array().unwrap().iter().find(|row| {
        row["product_category_level_1"] == "Toys" && row["product_category_level_2"].is_null()
    });
    assert_eq!(toys.unwrap()["revenue_weekly_change"], 2.0, "{rows}");
    assert_eq!(toys.unwrap()["campaign_country"], "US", "{rows}");
}

fn expected_score(row: &serde_json::Value) -> f64 {
    0.1 * row["revenue_daily_change"].as_f64().unwrap_or(0.0)
        + 0.9 * row["revenue_weekly_change"].as_f64().unwrap_or(0.0)
}

/// `/rows` answered `score: 0.0` on every row and ignored its filters
/// (`?country=IS&limit=1&level=1` listed every row of every country): rows carry the score the
/// ranking gives them and honour `country`, `category`, `level` and `limit`, imported or
/// computed; a bad value is a 400 naming it.
/// A shop running several stores can ask for one store's trends (they summed every store's
/// sales, and `store` was an unknown parameter); imported rows carry no store.
#[tokio::test]
async fn trends_can_be_asked_for_one_store() {
    let test = TestApp::new();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64;
    let sale = |store: &str, category: &str, n: i64| {
        json!({"type": "purchase", "store": store, "country": "US",
               "timestamp": Timestamp(now - 60_000).to_rfc3339(), "order": {"id": format!("o{n}")},
               "items": [{"id": format!("p{n}"), "category": category, "price": "10.00"}]})
    };
    let events = json!([sale("north", "Toys", 1), sale("south", "Books", 2)]);
    assert_eq!(test.post_json("/api/v1/events", &events.to_string()).await.status, StatusCode::OK);
    let categories = |rows: &serde_json::Value| -> Vec<String> {
        let mut names: Vec<String> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["category_level_1"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let every = test.get("/api/v1/category-trends/rows").await.json();
    assert_eq!(categories(&every), ["Books", "Toys"]);
    let north = test.get("/api/v1/category-trends/rows?store=north").await.json();
    assert_eq!(categories(&north), ["Toys"]);
    let nobody = test.get("/api/v1/category-trends/rows?store=west").await.json();
    assert_eq!(categories(&nobody), Vec::<String>::new());
    let imported = test.get("/api/v1/category-trends/rows?source=imported&store=north").await;
    assert_eq!(imported.status, StatusCode::BAD_REQUEST);
    assert_eq!(imported.json()["error"]["details"]["parameter"], "store");
}

#[tokio::test]
async fn trend_rows_are_scored_and_filtered() {
    let test = TestApp::new();
    let request = post("/api/v1/category-trends/import").body(Body::from(SAMPLE)).unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::OK);

    let rows = test.get("/api/v1/category-trends/rows?source=imported&country=uk").await.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 30);
    for row in rows {
        assert_eq!(row["country"], "UK");
        assert!((row["score"].as_f64().unwrap() - expected_score(row)).abs() < 1e-9, "{row}");
    }
    assert!(rows.iter().any(|row| row["score"].as_f64().unwrap() != 0.0));
    for (query, expected) in [
        ("country=US&level=3&limit=2", 2),
        // Seed 1's UK is ISO's GB, as ingest stores it; its AUSTRALIA is the name of AU,
        // which computed rows say (`country=AU` missed the imported rows).
        ("country=GB", 30),
        ("country=australia", 25),
        ("country=AU", 25),
        ("country=United%20States", 325),
        // The sample's rows are all of level 3.
        ("level=1", 0),
        ("category=Marine%20Electronics", 1),
        ("", 380),
    ] {
        let rows = test.get(&format!("/api/v1/category-trends/rows?source=imported&{query}")).await;
        assert_eq!(rows.json().as_array().unwrap().len(), expected, "{query}");
    }

    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64;
    let sale = |days_ago: i64, country: &str, price: &str, n: i64| {
        json!({"type": "purchase", "timestamp": Timestamp(now - days_ago * 86_400_000 - 60_000).to_rfc3339(),
               "country": country, "order": {"id": format!("o{n}")},
               "items": [{"id": "kite", "category": "Toys > Outdoor", "price": price}]})
    };
    let events = json!([
        sale(0, "IS", "30.00", 1),
        sale(8, "IS", "10.00", 2),
        sale(0, "US", "50.00", 3),
        sale(8, "US", "10.00", 4)
    ]);
    assert_eq!(test.post_json("/api/v1/events", &events.to_string()).await.status, StatusCode::OK);
    let rows = test.get("/api/v1/category-trends/rows?country=IS&limit=1&level=1").await.json();
    assert_eq!(
        (rows[0]["country"].clone(), rows[0]["category_level_1"].clone()),
        (json!("IS"), json!("Toys"))
    );
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert!(rows[0].get("category_level_2").is_none());
    assert!((rows[0]["score"].as_f64().unwrap() - expected_score(&rows[0])).abs() < 1e-9);
    assert!((rows[0]["score"].as_f64().unwrap() - 1.8).abs() < 1e-9, "0.9 × +200 % weekly");
    let ranking = test.get("/api/v1/category-trends?country=IS&level=1").await.json();
    assert_eq!(ranking["gainers"][0]["score"], rows[0]["score"], "the ranking's score");

    for (query, parameter) in [
        ("level=4", "level"),
        ("level=one", "level"),
        ("limit=0", "limit"),
        ("source=elsewhere", "source"),
        ("currency=XXXX", "currency"),
        ("colour=red", "colour"),
    ] {
        let response = test.get(&format!("/api/v1/category-trends/rows?{query}")).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.json()["error"]["details"]["parameter"], parameter, "{query}");
    }
}

/// A CSV of only its header (what a failed upstream export sends) answered `{"imported": 0}`
/// and replaced the good imported rows with none: it is refused naming the body, and the
/// previous import is kept, across a restart too.
#[tokio::test]
async fn an_import_without_rows_is_refused_and_keeps_the_previous_one() {
    let test = TestApp::new();
    let sample = post("/api/v1/category-trends/import").body(Body::from(SAMPLE)).unwrap();
    assert_eq!(test.send(sample).await.status, StatusCode::OK);
    let header = std::str::from_utf8(SAMPLE).unwrap().lines().next().unwrap();
    for csv in [format!("{header}\n"), header.to_owned(), format!("{header}\r\n\r\n\n")] {
        let request = post("/api/v1/category-trends/import").body(Body::from(csv)).unwrap();
        let response = test.send(request).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{:?}", response.json());
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], "body", "{error}");
        let reason = error["details"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("no rows") && reason.contains("previous import is kept"),
            "{reason}"
        );
    }
    let rows = test.get("/api/v1/category-trends/rows?source=imported").await.json();
    assert_eq!(rows.as_array().unwrap().len(), 380);
    let test = test.restart(|_| {});
    let rows = test.get("/api/v1/category-trends/rows?source=imported").await.json();
    assert_eq!(rows.as_array().unwrap().len(), 380, "the previous import is kept on disk too");
}
