//! Avro object container files, read with arrow-rs's own Avro reader (the
//! schema is the file's header, so nothing has to be inferred).

use std::io::Cursor;

use deltalake::arrow::array::RecordBatch;

use crate::bronze::files::Rejection;

/// The batches of an Avro OCF file.
pub fn read_avro(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, Rejection> {
    let reader = arrow_avro::reader::ReaderBuilder::new()
        .with_batch_size(8192)
        .build(Cursor::new(bytes))
        .map_err(Rejection::Avro)?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(Rejection::Avro)
}

/// Writes batches as one Avro OCF file (fixtures, the demo's landing files).
pub fn write_avro(batches: &[RecordBatch]) -> crate::Result<Vec<u8>> {
    let Some(first) = batches.first() else {
        return Err(arrow_avro::errors::AvroError::General("an Avro file needs a batch for its schema".into()).into());
    };
    let mut writer = arrow_avro::writer::AvroWriter::new(Vec::new(), first.schema().as_ref().clone())?;
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    Ok(writer.into_inner())
}
