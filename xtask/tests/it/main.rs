mod contracts;
mod layering;
