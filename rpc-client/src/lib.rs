//! placeholder: see issues
